//! `init.from`: a new run's weights taken from another network (a run directory's record, or
//! d2l's or torchvision's PyTorch weights), adapted to this run's classes and channels, with one line saying
//! what was loaded, adapted and re-initialised, and from where.

use std::path::{Path, PathBuf};

use alexnet_model::{AlexNet, AlexNetConfig, Preprocess, TransferError};
use anyhow::{Context, Result};
use burn::tensor::backend::Backend;

use crate::inference::{CheckpointChoice, load_model};
use crate::interop;
use crate::run::{RunDir, Setting, SettingNames, TrainingConfig, field_names};

/// The start network's input size does not fit this run's linear layers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.describe(&field_names))]
pub struct InputSizeMismatch {
    /// The network the run starts from.
    pub from: PathBuf,
    /// Its input side.
    pub source_side: usize,
    /// Its first linear layer's inputs.
    pub source_width: usize,
    /// This run's input side and first linear layer's inputs.
    pub target: (usize, usize),
    /// The input sides that give the source's width.
    pub fitting: (usize, usize),
}

impl InputSizeMismatch {
    /// The message, the setting named by `name`.
    pub fn describe(&self, name: SettingNames) -> String {
        let resize = name(Setting::ImageSize);
        let (low, high) = self.fitting;
        format!(
            "{} was trained on {}-pixel images (its first linear layer takes {} inputs) but {} \
             {} gives {} inputs; use {} {} (any side from {low} to {high} fits)",
            self.from.display(),
            self.source_side,
            self.source_width,
            resize,
            self.target.0,
            self.target.1,
            resize,
            self.source_side
        )
    }
}

/// The network a new run starts from: `fresh` itself, or `fresh` with the weights of
/// `config.init.from` wherever they fit; `config.init.loaded` records what was done, which is
/// also printed.
pub fn start_from<B: Backend>(
    config: &mut TrainingConfig,
    fresh: AlexNet<B>,
    device: &B::Device,
) -> Result<AlexNet<B>> {
    let Some(from) = config.init.from.clone() else {
        return Ok(fresh);
    };
    let (source, record) = load_source::<B>(&from, config, device)?;
    let (net, transfer) = fresh.take_weights_from(source).map_err(|err| match err {
        TransferError::FlattenWidth { source_width, .. } => {
            mismatch(&from, source_width, None, &config.model).into()
        }
        other => {
            anyhow::Error::from(other).context(format!("cannot start from {}", from.display()))
        }
    })?;
    let mut line = format!(
        "init: {} loaded from {}",
        transfer.loaded.join(", "),
        record.display()
    );
    if let Some(adapted) = &transfer.adapted {
        line.push_str(&format!("; {adapted}"));
    }
    if !transfer.reinitialised.is_empty() {
        line.push_str(&format!(
            "; {} re-initialised (Xavier) for {} classes",
            transfer.reinitialised.join(", "),
            config.model.num_classes
        ));
    }
    println!("{line}");
    config.init.loaded = Some(line.trim_start_matches("init: ").to_string());
    Ok(net)
}

/// How the network `from` names (a run directory or a weights file) reads images: a run's
/// recorded preprocessing, ImageNet's for torchvision's colour network; `None` when `from`
/// cannot be read (starting from it then says why).
pub fn source_preprocess(from: &Path) -> Option<Preprocess> {
    if from.is_dir() {
        let run = RunDir::new(from);
        return TrainingConfig::from_file(&run.config_file())
            .ok()
            .map(|c| c.data.preprocess);
    }
    let held = interop::file_network(from, None).ok()??;
    Some(Preprocess::for_weights(held.arch, held.in_channels?))
}

/// The source network and the record it came from: a run directory's chosen record, or a
/// PyTorch file read as `alexnet import` reads it.
fn load_source<B: Backend>(
    from: &Path,
    config: &TrainingConfig,
    device: &B::Device,
) -> Result<(AlexNet<B>, PathBuf)> {
    if from.is_dir() {
        let choice: CheckpointChoice = config
            .init
            .checkpoint
            .as_deref()
            .unwrap_or("final")
            .parse()
            .expect("every string is a choice");
        let loaded = load_model::<B>(&RunDir::new(from), &choice, device)
            .with_context(|| format!("cannot start from the run {}", from.display()))?;
        let (source, target) = (loaded.config.arch, config.model.arch);
        if source != target {
            return Err(anyhow::Error::from(TransferError::Arch { source, target })
                .context(format!("cannot start from {}", from.display())));
        }
        let width = loaded.config.flatten_width()?;
        if width != config.model.flatten_width()? {
            let side = Some(loaded.config.image_size);
            return Err(mismatch(from, width, side, &config.model).into());
        }
        return Ok((loaded.net, loaded.source));
    }
    if !from.is_file() {
        anyhow::bail!(
            "{} is neither a run directory nor a weights file; name a run trained by alexnet \
             train or a PyTorch state dict",
            from.display()
        );
    }
    // The file's own network: the one its keys say, with its input and classes.
    let exported = interop::exported_input(from);
    let held = interop::file_network(from, None)?;
    let arch = held.map_or(config.model.arch, |h| h.arch);
    let side = exported.image_size.unwrap_or(config.model.image_size);
    let source = interop::file_model(arch, side, &exported, held);
    let (net, _) = interop::import_net::<B>(from, &source, None, device)?;
    Ok((net, from.to_path_buf()))
}

/// The mismatch of a source whose first linear layer takes `width` inputs, trained at `side`
/// (unknown: the smallest side that gives `width`).
fn mismatch(
    from: &Path,
    width: usize,
    side: Option<usize>,
    target: &AlexNetConfig,
) -> InputSizeMismatch {
    let fitting = sides_giving(width);
    InputSizeMismatch {
        from: from.to_path_buf(),
        source_side: side.unwrap_or(fitting.0),
        source_width: width,
        target: (
            target.image_size,
            target.flatten_width().expect("a validated config"),
        ),
        fitting,
    }
}

/// The smallest and largest input sides (up to 2,048) whose first linear layer takes `width`
/// inputs.
fn sides_giving(width: usize) -> (usize, usize) {
    let fits = |side: &usize| {
        AlexNetConfig::new()
            .with_image_size(*side)
            .flatten_width()
            .is_ok_and(|w| w == width)
    };
    let low = (1..=2048).find(fits).unwrap_or(0);
    let high = (low..=2048).rev().find(fits).unwrap_or(low);
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fitting_sides_give_the_same_width() {
        let width = |side| {
            AlexNetConfig::new()
                .with_image_size(side)
                .flatten_width()
                .unwrap()
        };
        let (low, high) = sides_giving(width(96));
        assert!(low <= 96 && 96 <= high, "{low}..{high}");
        assert_eq!(width(low), width(96));
        assert_eq!(width(high), width(96));
        assert_ne!(width(high + 1), width(96));
        let m = mismatch(
            Path::new("runs/a"),
            width(224),
            None,
            &AlexNetConfig::new().with_image_size(96),
        );
        let message = m.describe(&|s| format!("--{}", s.field()));
        assert!(message.contains("6400 inputs"), "{message}");
        assert!(
            message.contains("--model.image_size 96 gives 256 inputs"),
            "{message}"
        );
    }
}
