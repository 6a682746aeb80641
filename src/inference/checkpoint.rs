//! Which record to load (`final`, `best`, `last`, an epoch or a path) and loading it safely.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use alexnet_model::{AlexNet, AlexNetConfig};
use anyhow::{Context, Result, bail};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;

use crate::artifacts;
use crate::training::{Classifier, TrainingConfig};

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
    /// The record it was loaded from.
    pub source: PathBuf,
}

/// Mean test loss of `epoch` from burn-train's log (`valid/epoch-N/Loss.log`), as Burn's
/// checkpointing strategy computes it; `None` when the log is missing or unreadable.
fn logged_test_loss(dir: &Path, epoch: usize) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(format!("valid/epoch-{epoch}/Loss.log"))).ok()?;
    let (mut sum, mut count) = (0.0, 0usize);
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (value, n) = line.split_once(',').unwrap_or((line, "1"));
        let (value, n): (f64, usize) = (value.parse().ok()?, n.parse().ok()?);
        sum += value * n as f64;
        count += n;
    }
    (count > 0).then(|| sum / count as f64)
}

/// The complete checkpoint with the lowest logged test loss.
pub fn best_epoch(dir: &Path) -> Option<usize> {
    artifacts::complete_checkpoints(dir)
        .into_iter()
        .filter_map(|epoch| Some((epoch, logged_test_loss(dir, epoch)?)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(epoch, _)| epoch)
}

fn available(dir: &Path) -> String {
    let epochs = artifacts::complete_checkpoints(dir);
    if epochs.is_empty() {
        return "none".into();
    }
    epochs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The record file `choice` names in the run directory `dir`.
fn resolve(dir: &Path, choice: &CheckpointChoice) -> Result<PathBuf> {
    let path = match choice {
        CheckpointChoice::Final => {
            let path = artifacts::model_path(dir).with_extension("mpk");
            if !path.is_file() {
                bail!(
                    "{} has no final model (model.mpk): the run has not finished; pass \
                     --checkpoint last, best or an epoch (available: {})",
                    dir.display(),
                    available(dir)
                );
            }
            path
        }
        CheckpointChoice::Last | CheckpointChoice::Best => {
            let epoch = match choice {
                CheckpointChoice::Last => artifacts::complete_checkpoints(dir).last().copied(),
                _ => best_epoch(dir),
            };
            let Some(epoch) = epoch else {
                bail!(
                    "{} has no complete checkpoint yet; train for at least one epoch",
                    dir.display()
                );
            };
            artifacts::checkpoint_file(dir, "model", epoch)
        }
        CheckpointChoice::Epoch(epoch) => {
            let path = artifacts::checkpoint_file(dir, "model", *epoch);
            if !path.is_file() {
                bail!(
                    "{} has no checkpoint of epoch {epoch} (available: {})",
                    dir.display(),
                    available(dir)
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

/// Reads the model part of the run's `config.json`.
fn run_model_config(dir: &Path) -> Result<AlexNetConfig> {
    if !dir.is_dir() {
        bail!(
            "artifact directory {} does not exist; pass the --artifact-dir of a training run",
            dir.display()
        );
    }
    let path = artifacts::config_path(dir);
    if !path.is_file() {
        bail!(
            "{} has no config.json, so the network cannot be rebuilt; pass the --artifact-dir \
             of a training run",
            dir.display()
        );
    }
    let config = TrainingConfig::load(&path)
        .with_context(|| format!("{} is not a training config", path.display()))?;
    config
        .model
        .validate()
        .with_context(|| format!("{}", path.display()))?;
    Ok(config.model)
}

/// Loads `path` as a bare AlexNet record (`model.mpk`) or, failing that, as a training
/// checkpoint (the network inside the Learner's model).
fn load_record<B: Backend>(
    fresh: &AlexNet<B>,
    path: &Path,
    device: &B::Device,
) -> Result<AlexNet<B>> {
    let recorder = artifacts::recorder();
    let stem = path.with_extension("");
    let bare = fresh.clone().load_file(&stem, &recorder, device);
    let bare_err = match bare {
        Ok(net) => return Ok(net),
        Err(err) => err,
    };
    Classifier::new(fresh.clone())
        .load_file(&stem, &recorder, device)
        .map(|c| c.net)
        .map_err(|_| {
            anyhow::anyhow!(
                "cannot load {}: not a readable AlexNet record ({}); the file is truncated, \
                 corrupt or from another program",
                path.display(),
                bare_err
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("unknown error")
            )
        })
}

/// Rebuilds the network of the run in `dir` from its `config.json` and loads the chosen record,
/// checking that every parameter has the shape the config implies.
pub fn load_model<B: Backend>(
    dir: &Path,
    choice: &CheckpointChoice,
    device: &B::Device,
) -> Result<LoadedModel<B>> {
    let config = run_model_config(dir)?;
    let source = resolve(dir, choice)?;
    let fresh = config.try_init::<B>(device)?;
    let net = load_record(&fresh, &source, device)?;
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

    #[test]
    fn best_is_the_lowest_logged_test_loss_among_complete_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let write = |epoch: usize, loss: &str| {
            let valid = dir.path().join(format!("valid/epoch-{epoch}"));
            std::fs::create_dir_all(&valid).unwrap();
            std::fs::write(valid.join("Loss.log"), loss).unwrap();
            for part in artifacts::CHECKPOINT_PARTS {
                let path = artifacts::checkpoint_file(dir.path(), part, epoch);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, b"x").unwrap();
            }
        };
        write(1, "2.0,1\n1.0,1\n"); // mean 1.5
        write(2, "1.2,3\n0.4,1\n"); // weighted mean 1.0
        write(3, "1.1,1\n");
        assert_eq!(best_epoch(dir.path()), Some(2));
        std::fs::remove_file(artifacts::checkpoint_file(dir.path(), "optim", 2)).unwrap();
        assert_eq!(best_epoch(dir.path()), Some(3));
    }
}
