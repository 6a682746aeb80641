//! Every decision of a resumed run, in one place: which settings it keeps from its saved
//! configuration, which epoch it continues from (the newest that is complete in every file),
//! what it forgets of the epochs after that one, and how it finishes a run that had trained
//! every epoch but was stopped before writing its final files.

use anyhow::{Context, Result};
use burn::module::Module;
use burn::record::Recorder;
use burn::tensor::backend::Backend;
use serde::de::IgnoredAny;

use super::classifier::Classifier;
use crate::report::{self, RunReport};
use crate::run::{
    self, CHECKPOINT_PARTS, Overrides, RunDir, Setting, SettingNames, TrainingConfig,
};

/// A setting given to a resumed run with another value than its saved one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.describe(&run::field_names))]
pub struct ResumeConflict {
    /// The setting.
    pub setting: Setting,
    /// The value given now.
    pub given: String,
    /// The saved value.
    pub saved: String,
}

impl ResumeConflict {
    /// The message, the setting named by `name`.
    pub fn describe(&self, name: SettingNames) -> String {
        format!(
            "{} {} conflicts with the run being resumed ({} {} in its config.json)",
            name(self.setting),
            self.given,
            self.setting.field(),
            self.saved
        )
    }
}

/// The saved configuration of `run` with `overrides` applied; only the settings declared
/// `may_resume` may differ.
pub fn saved_config(run: &RunDir, overrides: &Overrides) -> Result<TrainingConfig> {
    let saved = run.load_config().with_context(|| {
        format!(
            "nothing to resume in {}; start a new run there first",
            run.path().display()
        )
    })?;
    let changed = overrides.applied_to(saved.clone());
    if let Some(setting) = overrides
        .changes(&saved)
        .into_iter()
        .find(|s| !s.declaration().may_resume)
    {
        return Err(ResumeConflict {
            setting,
            given: setting.value_in(&changed),
            saved: setting.value_in(&saved),
        }
        .into());
    }
    Ok(changed)
}

/// Where a resumed run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumption {
    /// Train on after epoch `done` (0: no epoch was complete, so from the start).
    From(usize),
    /// Every epoch had been trained; the final files are now written.
    Finished(usize),
}

/// Decides where `run` resumes and makes its directory ready for it: forgets what came after
/// the resume point, or completes a run that had nothing left to train.
pub fn prepare<B: Backend>(
    run: &RunDir,
    config: &TrainingConfig,
    model: &Classifier<B>,
    device: &B::Device,
) -> Result<Resumption> {
    let done = newest_good_checkpoint(run, model, device).unwrap_or(0);
    forget_after(run, done)?;
    let stopped_early = run
        .early_stop()
        .is_some_and(|s| s.epoch == done && config.epochs <= s.epochs);
    if done > 0 && (done >= config.epochs || stopped_early) {
        finish_completed(run, (config, done), model, device)?;
        return Ok(Resumption::Finished(done));
    }
    Ok(Resumption::From(done))
}

/// The newest epoch that is good to resume from: its three checkpoint records load and pass
/// their checksums, and the journal has its line. `None` when no epoch is. Others are skipped
/// with a warning each.
fn newest_good_checkpoint<B: Backend>(
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
fn forget_after(run: &RunDir, done: usize) -> Result<()> {
    run.remove_partial_records()?;
    run.truncate_journal(done)
}

/// A run whose every epoch is checkpointed (the last good one is `done`), but which may have
/// been stopped before its final model, report or curves were written: writes what is missing
/// or damaged.
fn finish_completed<B: Backend>(
    run: &RunDir,
    (config, done): (&TrainingConfig, usize),
    model: &Classifier<B>,
    device: &B::Device,
) -> Result<()> {
    let fresh = config.model.try_init::<B>(device)?;
    let final_model = run.model_file();
    // An early-stopped run's final model is its best epoch's.
    let chosen = run.early_stop().map_or(done, |s| s.best_epoch);
    if run::load_net(&fresh, &final_model, device).is_err() {
        let trained = model
            .clone()
            .load_file(
                run.checkpoint_file("model", chosen),
                &run::recorder(),
                device,
            )
            .with_context(|| format!("cannot read the checkpoint of epoch {chosen}"))?;
        run.save_model(&trained.net)?;
        println!(
            "wrote the final model {} from the checkpoint of epoch {chosen} (the run had \
             stopped before writing it)",
            final_model.display()
        );
    }
    RunReport::from_run(run)?.save(run)?;
    report::plot_run(run, config.epochs.max(done), false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Value;

    #[test]
    fn resuming_allows_more_epochs_and_refuses_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let saved = TrainingConfig::d2l(65)
            .with_epochs(2)
            .with_limit_train(Some(100));
        run.save_config(&saved).unwrap();
        let more = Overrides::default()
            .with(Setting::Epochs, Value::Count(5))
            .with(Setting::NumWorkers, Value::Count(2))
            .with(Setting::ImageSize, Value::Count(65));
        let resumed = saved_config(&run, &more).unwrap();
        assert_eq!(resumed, saved.clone().with_epochs(5).with_num_workers(2));

        let conflict = |overrides: Overrides| {
            let err = saved_config(&run, &overrides).unwrap_err();
            err.downcast::<ResumeConflict>().unwrap()
        };
        let c = conflict(Overrides::default().with(Setting::LimitTrain, Value::Count(7)));
        assert_eq!((c.setting, c.given.as_str()), (Setting::LimitTrain, "7"));
        assert_eq!(
            c.to_string(),
            "limit_train 7 conflicts with the run being resumed (limit_train 100 in its \
             config.json)"
        );
        let c = conflict(
            Overrides::default()
                .with(Setting::Nesterov, Value::On)
                .with(Setting::Momentum, Value::Number(0.9)),
        );
        assert_eq!(c.setting, Setting::Momentum, "the first in Setting::ALL");
        let c = conflict(Overrides::default().with(Setting::ClipGradNorm, Value::Number(1.0)));
        assert_eq!((c.given.as_str(), c.saved.as_str()), ("1", "off"));
    }

    #[test]
    fn a_directory_without_a_run_has_nothing_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        let err = saved_config(&RunDir::new(dir.path()), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("nothing to resume"), "{err:#}");
    }
}
