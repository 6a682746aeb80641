//! Picking up a run where it stopped: its saved configuration, the newest epoch that is
//! complete in every file, forgetting what came after it, and finishing a run that was stopped
//! after its last epoch but before its final files.

use anyhow::{Context, Result};
use burn::module::Module;
use burn::record::Recorder;
use burn::tensor::backend::Backend;
use serde::de::IgnoredAny;

use super::{Classifier, ConfigFlags};
use crate::report::{self, RunReport};
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

/// The newest epoch that is good to resume from: its three checkpoint records load and pass
/// their checksums, and the journal has its line. `None` when no epoch is. Others are skipped
/// with a warning each.
pub fn newest_good_checkpoint<B: Backend>(
    run: &RunDir,
    model: &Classifier<B>,
    device: &B::Device,
) -> Option<usize> {
    let journal = run.read_journal();
    let recorder = run::recorder();
    let good = |epoch: usize| {
        if !journal.contains_key(&epoch) {
            eprintln!(
                "warning: skipping checkpoint {epoch}: the run stopped before its epoch was \
                 journalled; that epoch runs again"
            );
            return false;
        }
        model
            .clone()
            .load_file(run.checkpoint_file("model", epoch), &recorder, device)
            .and_then(|_| {
                CHECKPOINT_PARTS[1..].iter().try_for_each(|part| {
                    let mut path = run.checkpoint_file(part, epoch);
                    Recorder::<B>::load_item::<IgnoredAny>(&recorder, &mut path).map(|_| ())
                })
            })
            .map_err(|e| {
                eprintln!(
                    "warning: skipping checkpoint {epoch}: {}",
                    run::describe(&e)
                )
            })
            .is_ok()
    };
    run.complete_checkpoints()
        .into_iter()
        .rev()
        .find(|&e| good(e))
}

/// Forgets what a stopped run did after epoch `done`: its half-written records and its
/// journal lines (those epochs run again, and their metric logs are rewritten as they do).
pub fn forget_after(run: &RunDir, done: usize) -> Result<()> {
    run.remove_partial_records()?;
    run.truncate_journal(done)
}

/// A run whose every epoch is checkpointed (the last good one is `done`), but which may have
/// been stopped before its final model, report or curves were written: writes what is missing
/// or damaged.
pub fn finish_completed<B: Backend>(
    run: &RunDir,
    (config, done): (&TrainingConfig, usize),
    model: &Classifier<B>,
    device: &B::Device,
) -> Result<()> {
    forget_after(run, done)?;
    let fresh = config.model.try_init::<B>(device)?;
    let final_model = run.model_file();
    if run::load_net(&fresh, &final_model, device).is_err() {
        let last = done;
        let trained = model
            .clone()
            .load_file(run.checkpoint_file("model", last), &run::recorder(), device)
            .with_context(|| format!("cannot read the checkpoint of epoch {last}"))?;
        run.save_model(&trained.net)?;
        println!(
            "wrote the final model {} from the checkpoint of epoch {last} (the run had stopped \
             before writing it)",
            final_model.display()
        );
    }
    RunReport::from_run(run)?.save(run)?;
    report::plot_run(run, config.epochs.max(done), false)?;
    Ok(())
}
