//! Picking up a run where it stopped: its saved configuration and newest loadable checkpoint.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::config::Config;
use burn::module::Module;
use burn::record::Recorder;
use burn::tensor::backend::Backend;
use serde::de::IgnoredAny;

use super::{Classifier, ConfigFlags, TrainingConfig};
use crate::artifacts::{self, CHECKPOINT_PARTS};

/// The configuration saved by the run in `dir`, with `flags` applied (conflicts refused).
pub fn saved_config(dir: &Path, flags: &ConfigFlags) -> Result<TrainingConfig> {
    let path = artifacts::config_path(dir);
    if !path.is_file() {
        bail!(
            "nothing to resume in {}: it has no config.json; start a run with \
             `alexnet train --artifact-dir {}`",
            dir.display(),
            dir.display()
        );
    }
    let saved = TrainingConfig::load(&path)
        .with_context(|| format!("{} is not a training config", path.display()))?;
    Ok(flags.resumed(saved)?)
}

/// The newest epoch whose checkpoint loads completely; `None` when no epoch finished.
/// Records that do not load (cut short by a crash, corrupted) are skipped with a warning.
pub fn newest_loadable_checkpoint<B: Backend>(
    dir: &Path,
    model: &Classifier<B>,
    device: &B::Device,
) -> Option<usize> {
    let recorder = artifacts::recorder();
    artifacts::complete_checkpoints(dir)
        .into_iter()
        .rev()
        .find(|&epoch| {
            let model_ok = model
                .clone()
                .load_file(
                    artifacts::checkpoint_file(dir, "model", epoch),
                    &recorder,
                    device,
                )
                .map_err(|e| eprintln!("warning: skipping checkpoint {epoch}: {e}"))
                .is_ok();
            model_ok
                && CHECKPOINT_PARTS[1..].iter().all(|part| {
                    let mut path = artifacts::checkpoint_file(dir, part, epoch);
                    Recorder::<B>::load_item::<IgnoredAny>(&recorder, &mut path)
                        .map_err(|e| eprintln!("warning: skipping checkpoint {epoch}: {e}"))
                        .is_ok()
                })
        })
}
