//! Training with burn-train's `SupervisedTraining` + `Learner`: the d2l protocol by default,
//! resumable from the newest complete checkpoint.

mod classifier;
mod config;
mod guard;
mod interrupt;
mod logger;
mod resume;
mod throughput;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::config::Config;
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::optim::SgdConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric};
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use burn::train::{
    ExecutionStrategy, Learner, MultiDeviceOptim, SupervisedTraining, TrainingStrategy,
};

pub use classifier::Classifier;
pub use config::{ConfigError, ConfigFlags, ResumeConflict, TrainingConfig};
pub use guard::{LossFault, LossGuard};
pub use interrupt::{StopReason, TrainingStopped, keep_ctrl_c_as_signal};
pub use logger::RunLogger;
pub use throughput::ExamplesPerSecond;

use crate::artifacts;
use crate::data::{FashionMnist, FashionMnistBatcher, Split};
use crate::progress::{EpochLog, ProgressRenderer, RunFiles};
use crate::report;

/// Where and how one training run happens, beyond the hyper-parameters.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The artifact directory (config, logs, checkpoints, final model).
    pub artifact_dir: PathBuf,
    /// An explicit Fashion-MNIST directory, else the default search.
    pub data_dir: Option<PathBuf>,
    /// Replace the files of an earlier run in the artifact directory.
    pub overwrite: bool,
    /// Continue the run in the artifact directory from its newest complete checkpoint.
    pub resume: bool,
    /// Draw burn-train's dashboard (stdout is a terminal) instead of one line per epoch.
    pub dashboard: bool,
    /// Backend and device, for the journal and report.
    pub device_label: String,
}

/// What a finished run reports, in d2l's terms.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Per-epoch metrics of the epochs this process ran.
    pub epochs: EpochLog,
    /// Where the final model record was written.
    pub model_path: PathBuf,
}

/// Loads one split, truncated to `limit`, refusing an empty result.
fn load_split(split: Split, dir: Option<&Path>, limit: Option<usize>) -> Result<FashionMnist> {
    let data = FashionMnist::load(split, dir)?.truncated(limit);
    if data.is_empty() {
        anyhow::bail!(
            "the {split} split is empty after --limit-{split} {}; use a limit of at least 1",
            limit.unwrap_or(0)
        );
    }
    Ok(data)
}

/// Trains AlexNet on backend `B`, writing everything into the artifact directory.
///
/// Returns `None` when resuming a run that already finished all its epochs.
pub fn train<B: AutodiffBackend>(
    devices: Vec<B::Device>,
    flags: &ConfigFlags,
    options: &RunOptions,
) -> Result<Option<TrainOutcome>> {
    let device = devices.first().expect("at least one device").clone();
    let dir = &options.artifact_dir;
    let config = match options.resume {
        true => resume::saved_config(dir, flags)?,
        false => flags.fresh(),
    };
    config.validate()?;
    let train_set = load_split(
        Split::Train,
        options.data_dir.as_deref(),
        config.limit_train,
    )?;
    let test_set = load_split(Split::Test, options.data_dir.as_deref(), config.limit_test)?;
    let train_len = train_set.len();

    let model = Classifier::new(config.model.try_init::<B>(&device)?);
    let resume_from = match options.resume {
        true => resume::newest_loadable_checkpoint(dir, &model, &device),
        false => None,
    };
    let done = resume_from.unwrap_or(0);
    if done >= config.epochs {
        println!(
            "nothing to resume: the run in {} finished all {} epochs (raise --epochs to train further)",
            dir.display(),
            config.epochs
        );
        return Ok(None);
    }
    if options.resume {
        artifacts::remove_partial_records(dir)?;
    } else {
        artifacts::prepare_run_dir(dir, options.overwrite)?;
    }
    config
        .save(artifacts::config_path(dir))
        .with_context(|| format!("cannot write the run config into {}", dir.display()))?;

    // Burn draws parameters lazily, at first use: seeding here still fixes the initial weights.
    // A resumed run draws fresh shuffles and dropout masks rather than replaying epoch 1's.
    let seed = config.seed.wrapping_add(done as u64);
    B::seed(&device, seed);
    let batcher = FashionMnistBatcher::new(config.model.image_size);
    let train_loader = DataLoaderBuilder::new(batcher.clone())
        .batch_size(config.batch_size)
        .shuffle(seed)
        .num_workers(config.num_workers)
        .set_device(device.clone())
        .build(train_set);
    let test_loader = DataLoaderBuilder::new(batcher)
        .batch_size(config.batch_size)
        .num_workers(config.num_workers)
        .set_device(device.clone())
        .build(test_set);

    let log = EpochLog::default();
    let training = SupervisedTraining::new(dir, train_loader, test_loader)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .metric_train_numeric(LearningRateMetric::new())
        .metrics((ExamplesPerSecond::new(),))
        .with_file_checkpointer(artifacts::recorder())
        .num_epochs(config.epochs);
    let interrupter = training.interrupter();
    let mut training =
        training.with_metric_logger(RunLogger::new(dir, done + 1, interrupter.clone()));
    if let Some(epoch) = resume_from {
        training = training.checkpoint(epoch);
    }
    if devices.len() > 1 {
        let strategy = ExecutionStrategy::MultiDevice(devices, MultiDeviceOptim::OptimMainDevice);
        training = training.with_training_strategy(TrainingStrategy::Default(strategy));
    }
    interrupt::install(interrupter.clone());
    let dashboard = options
        .dashboard
        .then(|| TuiMetricsRendererWrapper::new(interrupter.clone(), resume_from));
    let files = RunFiles {
        dir: dir.clone(),
        device: options.device_label.clone(),
        earlier: report::read_history(dir).into_iter().take(done).collect(),
    };
    let renderer = ProgressRenderer::new(
        config.epochs,
        log.clone(),
        dashboard.map(|d| Box::new(d) as _),
        Some(files),
    );
    let training = training.renderer(renderer);

    let guard = LossGuard::new(interrupter.clone());
    let model = model.with_guard(guard.clone());
    let learner = Learner::new(model, SgdConfig::new().init(), config.lr);
    let result = training.launch(learner);
    drop(result.renderer); // closes the dashboard and restores the terminal
    // burn-train has flushed its logs by now: the report reads them.
    let reported = report::RunReport::from_run(dir).and_then(|r| r.save(dir));
    if let Err(err) = reported {
        eprintln!("warning: no run report: {err:#}");
    }

    // The dashboard resets the interrupter when training ends, so tell an interrupted run by
    // its missing last epoch instead.
    if log.epochs().last().map(|e| e.epoch) != Some(config.epochs) {
        let steps = train_len.div_ceil(config.batch_size);
        let loss_fault = guard.fault().map(|f| StopReason::LossNotFinite {
            epoch: done + (f.step - 1) / steps + 1,
            step: (f.step - 1) % steps + 1,
            steps,
            loss: f.loss,
            lr: config.lr,
        });
        let reason = StopReason::from_interrupter(&interrupter, loss_fault);
        return Err(stopped(dir, &log, done, reason).into());
    }
    let model_path = artifacts::model_path(dir);
    result
        .model
        .net
        .save_file(&model_path, &artifacts::recorder())
        .with_context(|| format!("cannot write the final model to {}", model_path.display()))?;
    Ok(Some(TrainOutcome {
        epochs: log,
        model_path: model_path.with_extension("mpk"),
    }))
}

fn stopped(dir: &Path, log: &EpochLog, done_before: usize, reason: StopReason) -> TrainingStopped {
    let last_done = log.epochs().last().map_or(done_before, |e| e.epoch);
    TrainingStopped {
        reason,
        epoch: last_done + 1,
        kept: artifacts::complete_checkpoints(dir).last().copied(),
        dir: dir.display().to_string(),
    }
}
