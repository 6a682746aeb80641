//! Picking up a run where it stopped: its saved configuration and newest loadable checkpoint.

use anyhow::{Context, Result};
use burn::module::Module;
use burn::record::Recorder;
use burn::tensor::backend::Backend;
use serde::de::IgnoredAny;

use super::{Classifier, ConfigFlags};
use crate::run::{self, CHECKPOINT_PARTS, RunDir, TrainingConfig};

/// The configuration saved by `run`, with `flags` applied (conflicts refused).
pub fn saved_config(run: &RunDir, flags: &ConfigFlags) -> Result<TrainingConfig> {
    let saved = run.load_config().with_context(|| {
        format!(
            "nothing to resume in {}; start a run with `alexnet train --artifact-dir {}`",
            run.path().display(),
            run.path().display()
        )
    })?;
    Ok(flags.resumed(saved)?)
}

/// The newest epoch whose checkpoint loads completely; `None` when no epoch finished.
/// Records that do not load (cut short by a crash, corrupted) are skipped with a warning.
pub fn newest_loadable_checkpoint<B: Backend>(
    run: &RunDir,
    model: &Classifier<B>,
    device: &B::Device,
) -> Option<usize> {
    let recorder = run::recorder();
    let loads = |epoch: usize| {
        model
            .clone()
            .load_file(run.checkpoint_file("model", epoch), &recorder, device)
            .and_then(|_| {
                CHECKPOINT_PARTS[1..].iter().try_for_each(|part| {
                    let mut path = run.checkpoint_file(part, epoch);
                    Recorder::<B>::load_item::<IgnoredAny>(&recorder, &mut path).map(|_| ())
                })
            })
            .map_err(|e| eprintln!("warning: skipping checkpoint {epoch}: {e}"))
            .is_ok()
    };
    run.complete_checkpoints()
        .into_iter()
        .rev()
        .find(|&e| loads(e))
}
