//! Which record to load (`final`, `best`, `last`, an epoch or a path) and loading it safely.

use std::path::PathBuf;
use std::str::FromStr;

use alexnet_model::{AlexNet, AlexNetConfig};
use anyhow::{Result, bail};
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::run::{self, DataConfig, RecordError, RunDir, TrainingConfig};

/// The record `--checkpoint` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointChoice {
    /// `model.mpk`, written when training finished.
    Final,
    /// The checkpoint of the epoch with the lowest test loss.
    Best,
    /// The newest complete checkpoint.
    Last,
    /// The checkpoint of this epoch.
    Epoch(usize),
    /// A record file (a final model or a checkpoint).
    Path(PathBuf),
}

impl FromStr for CheckpointChoice {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "final" => Self::Final,
            "best" => Self::Best,
            "last" => Self::Last,
            _ => match s.parse() {
                Ok(epoch) => Self::Epoch(epoch),
                Err(_) => Self::Path(PathBuf::from(s)),
            },
        })
    }
}

/// A network rebuilt from a run's config and loaded from one of its records.
#[derive(Debug)]
pub struct LoadedModel<B: Backend> {
    /// The network, ready for inference.
    pub net: AlexNet<B>,
    /// The run's model configuration.
    pub config: AlexNetConfig,
    /// The run's images: Fashion-MNIST or a folder, and the class names.
    pub data: DataConfig,
    /// The record it was loaded from.
    pub source: PathBuf,
}

impl<A: AutodiffBackend> LoadedModel<A> {
    /// The same model without autodiff (the weights are shared, not copied): a model loaded on
    /// an autodiff backend for Grad-CAM predicts with this.
    pub fn valid(&self) -> LoadedModel<A::InnerBackend> {
        LoadedModel {
            net: self.net.valid(),
            config: self.config.clone(),
            data: self.data.clone(),
            source: self.source.clone(),
        }
    }
}

fn available(run: &RunDir) -> String {
    let epochs = run.complete_checkpoints();
    if epochs.is_empty() {
        return "none".into();
    }
    epochs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The record file `choice` names in `run`.
/// The record file `choice` names in `run`, without reading it.
pub fn resolve(run: &RunDir, choice: &CheckpointChoice) -> Result<PathBuf> {
    let dir = run.path();
    let path = match choice {
        CheckpointChoice::Final => {
            let path = run.model_file();
            if !path.is_file() {
                bail!(
                    "{} has no final model (model.mpk): the run has not finished; pass \
                     --checkpoint last, best or an epoch (available: {})",
                    dir.display(),
                    available(run)
                );
            }
            path
        }
        CheckpointChoice::Last | CheckpointChoice::Best => {
            let epoch = match choice {
                CheckpointChoice::Last => run.complete_checkpoints().last().copied(),
                _ => run.best_epoch(),
            };
            let Some(epoch) = epoch else {
                bail!(
                    "{} has no complete checkpoint yet; train for at least one epoch",
                    dir.display()
                );
            };
            run.checkpoint_file("model", epoch)
        }
        CheckpointChoice::Epoch(epoch) => {
            let path = run.checkpoint_file("model", *epoch);
            if !path.is_file() {
                bail!(
                    "{} has no checkpoint of epoch {epoch} (available: {})",
                    dir.display(),
                    available(run)
                );
            }
            path
        }
        CheckpointChoice::Path(path) => {
            if !path.is_file() {
                bail!("checkpoint {} does not exist", path.display());
            }
            path.clone()
        }
    };
    Ok(path)
}

/// Rebuilds the network of `run` from its `config.json` and loads the chosen record,
/// checking that every parameter has the shape the config implies.
pub fn load_model<B: Backend>(
    run: &RunDir,
    choice: &CheckpointChoice,
    device: &B::Device,
) -> Result<LoadedModel<B>> {
    let TrainingConfig {
        model: config,
        data,
        ..
    } = run.load_config()?;
    let source = resolve(run, choice)?;
    let fresh = config.try_init::<B>(device)?;
    let net = run::load_net(&fresh, &source, device).map_err(|err| match err {
        RecordError::Damaged(_) => anyhow::anyhow!(
            "{err}; load another record with --checkpoint last, best or an epoch (available: {})",
            available(run)
        ),
        other => other.into(),
    })?;
    if let Some((name, found, expected)) = net.shape_mismatch(&fresh) {
        bail!(
            "{} does not fit the run's config.json (image_size {}, num_classes {}): parameter \
             {name} is {found:?} in the record but {expected:?} for that config; load it with \
             the artifact directory of the run that wrote it",
            source.display(),
            config.image_size,
            config.num_classes
        );
    }
    Ok(LoadedModel {
        net,
        config,
        data,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse() {
        assert_eq!("final".parse(), Ok(CheckpointChoice::Final));
        assert_eq!("best".parse(), Ok(CheckpointChoice::Best));
        assert_eq!("last".parse(), Ok(CheckpointChoice::Last));
        assert_eq!("7".parse(), Ok(CheckpointChoice::Epoch(7)));
        assert_eq!(
            "a/b.mpk".parse(),
            Ok(CheckpointChoice::Path("a/b.mpk".into()))
        );
    }
}
