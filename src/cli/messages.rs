//! Errors in the command line's words: the modules below name a setting by its `config.json`
//! field and say what to do in plain words; here settings become flags and remedies become
//! commands.

use std::error::Error;

use super::config_flags::{flag, flag_names};
use crate::data::FolderError;
use crate::run::{ConfigError, Setting, UnknownField};
use crate::training::{InputSizeMismatch, Remedy, ResumeConflict, StopReason, TrainingStopped};

/// The message of `err` and its causes, as `{:#}` prints them, each in the command line's
/// words where it has its own.
pub fn explain(err: &anyhow::Error) -> String {
    let links: Vec<String> = err.chain().map(in_flag_words).collect();
    links.join(": ")
}

fn in_flag_words(link: &(dyn Error + 'static)) -> String {
    if let Some(err) = link.downcast_ref::<ConfigError>() {
        return err.describe(&flag_names);
    }
    if let Some(err) = link.downcast_ref::<InputSizeMismatch>() {
        return err.describe(&flag_names);
    }
    if let Some(err) = link.downcast_ref::<ResumeConflict>() {
        return resume_conflict(err);
    }
    if let Some(err) = link.downcast_ref::<TrainingStopped>() {
        return training_stopped(err);
    }
    if let Some(err) = link.downcast_ref::<UnknownField>() {
        return format!("{err}; `alexnet train --print-config` shows every field");
    }
    if let Some(FolderError::BadImages { dir, count, first }) = link.downcast_ref() {
        return format!(
            "{count} of the files in {} cannot be used as images, e.g. {first}; fix or remove \
             them, or pass {} to leave them out",
            dir.display(),
            flag(Setting::SkipBadImages)
        );
    }
    link.to_string()
}

fn resume_conflict(err: &ResumeConflict) -> String {
    let flag = flag(err.setting);
    format!(
        "{flag} {} conflicts with the run being resumed ({} {} in its config.json); drop the \
         flag to resume with the saved setting, or start a new run in another --artifact-dir",
        err.given,
        flag.trim_start_matches("--"),
        err.saved
    )
}

fn training_stopped(err: &TrainingStopped) -> String {
    let resume = format!(
        "alexnet train --resume --artifact-dir {}",
        err.dir.display()
    );
    let remedy = match err.remedy() {
        Remedy::Resume => format!("Resume with: {resume}"),
        Remedy::FixThenResume => match err.reason {
            StopReason::TooManyBadImages(_) => format!(
                "Fix the folder, or allow more with {}, and resume with: {resume}",
                flag(Setting::MaxBadFraction)
            ),
            _ => {
                format!("Fix the cause (a full disk, a damaged file, …) and resume with: {resume}")
            }
        },
        Remedy::SmallerLearningRate => {
            "Start a new run with a smaller --lr (add --overwrite to replace this one)".into()
        }
        Remedy::StartAgain => {
            let fix = match err.reason {
                StopReason::Fault(_) | StopReason::TooManyBadImages(_) => {
                    "Fix the cause (a full disk, a damaged file, …), then start"
                }
                _ => "Start",
            };
            format!("{fix} over from epoch 1 with the run's saved settings: {resume}")
        }
    };
    format!("{}. {remedy}", err.describe(&flag_names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::TrainingConfig;

    #[test]
    fn settings_are_named_by_their_flags() {
        let err = TrainingConfig::d2l(224)
            .with_batch_size(0)
            .validate()
            .unwrap_err();
        let err = anyhow::Error::from(err).context("the run's settings");
        assert_eq!(
            explain(&err),
            "the run's settings: --batch-size must be at least 1"
        );
        let small = anyhow::Error::from(TrainingConfig::d2l(64).validate().unwrap_err());
        let message = explain(&small);
        assert!(
            message.ends_with("(d2l uses 224); choose a larger --resize"),
            "{message}"
        );
        assert_eq!(
            message.matches("too small").count(),
            1,
            "said once: {message}"
        );
    }

    #[test]
    fn a_stopped_run_says_how_to_resume_or_restart() {
        let stopped = |reason| {
            anyhow::Error::from(TrainingStopped {
                reason,
                epoch: 2,
                kept: Some(1),
                dir: "runs/a".into(),
            })
        };
        assert_eq!(
            explain(&stopped(StopReason::User)),
            "training interrupted during epoch 2; the checkpoint of epoch 1 is intact. Resume \
             with: alexnet train --resume --artifact-dir runs/a"
        );
        let loss = StopReason::LossNotFinite {
            epoch: 2,
            step: 3,
            steps: 8,
            loss: f64::INFINITY,
            lr: 1e6,
        };
        let message = explain(&stopped(loss));
        assert!(
            message.contains("so --lr 1000000 is probably too high"),
            "{message}"
        );
        assert!(message.ends_with("smaller --lr (add --overwrite to replace this one)"));
    }

    #[test]
    fn a_run_stopped_before_its_first_epoch_says_it_starts_over() {
        let err = anyhow::Error::from(TrainingStopped {
            reason: StopReason::User,
            epoch: 1,
            kept: None,
            dir: "runs/a".into(),
        });
        assert_eq!(
            explain(&err),
            "training interrupted during epoch 1; no epoch had finished, so there is no \
             checkpoint yet. Start over from epoch 1 with the run's saved settings: alexnet \
             train --resume --artifact-dir runs/a"
        );
    }
}
