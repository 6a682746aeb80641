//! The last step: the left-out images recorded, the report written, then the final model, or
//! why the run stopped and what was kept.

use alexnet_model::AlexNet;
use std::path::Path;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};

use super::interrupt::{StopReason, TrainingStopped};
use super::launch::Launched;
use super::options::TrainOutcome;
use crate::assess::{Assess, Assessed, NamedImages, assess, split_name};
use crate::data::{BadImages, SkippedFile, Split};
use crate::inference::{CheckpointChoice, load_model};
use crate::report::RunReport;
use crate::run::{self, EarlyStop, RunDir, TrainingConfig};

/// Appends the images that failed to decode to the run's `bad-images.jsonl`, for the report; a
/// failed write is a warning (the stop message or the report names them too).
pub fn record_bad_images(run: &RunDir, bad: &[BadImages]) {
    let lines: String = bad
        .iter()
        .flat_map(BadImages::found)
        .map(|e| {
            let entry = SkippedFile {
                path: e.path().to_path_buf(),
                reason: e.to_string(),
            };
            let line = serde_json::to_string(&entry).expect("a left-out file serialises");
            format!("{line}\n")
        })
        .collect();
    if lines.is_empty() {
        return;
    }
    let path = run.bad_images_file();
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, lines.as_bytes()));
    if let Err(err) = appended {
        eprintln!("warning: cannot write {}: {err}", path.display());
    }
}

/// Writes `early-stop.json` for a run that early stopping ended after `epoch`, says so, and
/// returns the best epoch's network (what the final model becomes).
pub fn record_early_stop<B: Backend>(
    run: &RunDir,
    config: &TrainingConfig,
    epoch: usize,
    net: AlexNet<B>,
) -> Result<AlexNet<B>> {
    let best_epoch = run.best_epoch().unwrap_or(epoch);
    let stop = EarlyStop {
        epoch,
        best_epoch,
        patience: config.early_stop_patience.unwrap_or(0),
        epochs: config.epochs,
    };
    run.save_json(&run.early_stop_file(), &stop)?;
    println!("{}", stop.describe());
    let device = net
        .devices()
        .into_iter()
        .next()
        .expect("a network has a device");
    let best = run::load_net(&net, &run.checkpoint_file("model", best_epoch), &device)
        .with_context(|| format!("cannot read the checkpoint of epoch {best_epoch}"))?;
    Ok(best)
}

/// Forgets an earlier early stop of a run resumed with more epochs that then trained them all.
pub fn remove_stale_early_stop(run: &RunDir) -> Result<()> {
    match std::fs::remove_file(run.early_stop_file()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", run.early_stop_file().display()))
        }
        _ => Ok(()),
    }
}

/// Writes the report, then either the final model or the reason the run stopped early.
pub fn finish<B: AutodiffBackend>(launched: Launched<B>) -> Result<TrainOutcome> {
    let Launched {
        run,
        _lock,
        config,
        done,
        train_len,
        net,
        log,
        guard,
        interrupter,
        bad,
        early_stop,
        test_set,
    } = launched;
    record_bad_images(&run, &bad);
    let last_epoch = log.epochs().last().map(|e| e.epoch);
    let stopped_early = early_stop
        .and_then(|s| s.stopped())
        .filter(|&epoch| Some(epoch) == last_epoch);
    let net = match stopped_early {
        Some(epoch) => record_early_stop(&run, &config, epoch, net)?,
        None => {
            remove_stale_early_stop(&run)?;
            net
        }
    };
    // burn-train has flushed its logs by now: the report reads them. A run stopped by a fault
    // (a full disk) says so once; its report is rebuilt when it resumes.
    let report = RunReport::from_run(&run).and_then(|r| r.save(&run));
    let finished = last_epoch == Some(config.epochs) || stopped_early.is_some();
    if let (Err(err), true) = (report, finished) {
        eprintln!("warning: no run report: {err:#}");
    }
    // The dashboard resets the interrupter when training ends, so tell an interrupted run by
    // its missing last epoch instead.
    if !finished {
        let steps = train_len.div_ceil(config.batch_size);
        let loss_fault = guard.fault().map(|f| StopReason::LossNotFinite {
            epoch: done + (f.step - 1) / steps + 1,
            step: (f.step - 1) % steps + 1,
            steps,
            loss: f.loss,
            lr: config.lr,
        });
        let too_many = bad.iter().find_map(BadImages::too_many);
        let finding = loss_fault.or(too_many.map(StopReason::TooManyBadImages));
        let reason = StopReason::from_interrupter(&interrupter, finding);
        let last_done = log.epochs().last().map_or(done, |e| e.epoch);
        return Err(TrainingStopped {
            reason,
            epoch: last_done + 1,
            kept: run.complete_checkpoints().last().copied(),
            dir: run.path().to_path_buf(),
        }
        .into());
    }
    let model_path = run.save_model(&net)?;
    let device = net
        .devices()
        .into_iter()
        .next()
        .expect("a network has a device");
    let held_out = (split_name(&config.data, Split::Test).to_string(), test_set);
    let assessed = assess_final::<B>(&run, &config, &model_path, held_out, &device)
        .inspect_err(|err| {
            eprintln!(
                "warning: no evaluation of the final model: {err:#} (`alexnet eval` writes it)"
            )
        })
        .ok()
        .map(Box::new);
    if assessed.is_some()
        && let Err(err) = RunReport::from_run(&run).and_then(|r| r.save(&run))
    {
        eprintln!("warning: the run report leaves the evaluation out: {err:#}");
    }
    Ok(TrainOutcome::Trained {
        epochs: log,
        model_path,
        assessed,
    })
}

/// The final model, read back from its record, evaluated on the images the run validated on:
/// `eval.json`, the confusion matrix and the gallery of its most confident mistakes, as `eval`
/// writes them.
fn assess_final<B: AutodiffBackend>(
    run: &RunDir,
    config: &TrainingConfig,
    model_path: &Path,
    held_out: NamedImages,
    device: &B::Device,
) -> Result<Assessed> {
    let record = CheckpointChoice::Path(model_path.to_path_buf());
    let loaded = load_model::<B>(run, &record, device)?;
    let how = Assess {
        batch_size: config.batch_size,
        skip_bad: config.data.skip_bad_images,
        png: false,
    };
    assess(run, loaded, held_out, how, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Augmentation, FolderBatcher, ImageFile, ImageTransform, Sample};

    #[test]
    fn images_left_out_while_training_are_appended_as_lines_that_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let bad = BadImages::collect();
        let transform = ImageTransform::new(8, 1);
        let gone = dir.path().join("gone.png");
        let sample = Sample {
            item: ImageFile {
                path: gone.clone(),
                label: 1,
            },
            index: 0,
            epoch: 1,
        };
        FolderBatcher::new(transform, bad.clone(), Augmentation::default()).pixels(&[sample]);
        record_bad_images(&run, std::slice::from_ref(&bad));
        record_bad_images(&run, &[BadImages::collect(), bad]);
        let text = std::fs::read_to_string(run.bad_images_file()).unwrap();
        let lines: Vec<SkippedFile> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "appended, not replaced: {text}");
        assert!(lines.iter().all(|l| l.path == gone), "{text}");
    }

    #[test]
    fn an_earlier_early_stop_is_forgotten_once_the_run_trains_its_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        remove_stale_early_stop(&run).expect("nothing to forget is no error");
        std::fs::write(run.early_stop_file(), "{}").unwrap();
        remove_stale_early_stop(&run).unwrap();
        assert!(!run.early_stop_file().exists());
    }
}
