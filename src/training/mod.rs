//! Training with burn-train's `SupervisedTraining` + `Learner`: the d2l protocol by default.

mod classifier;
mod config;
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
use burn::train::{Learner, SupervisedTraining};

pub use classifier::Classifier;
pub use config::{ConfigError, TrainingConfig};
pub use throughput::ExamplesPerSecond;

use crate::artifacts;
use crate::data::{FashionMnist, FashionMnistBatcher, Split};
use crate::progress::{EpochLog, ProgressRenderer};

/// Where and how one training run happens, beyond the hyper-parameters.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The artifact directory (config, logs, checkpoints, final model).
    pub artifact_dir: PathBuf,
    /// An explicit Fashion-MNIST directory, else the default search.
    pub data_dir: Option<PathBuf>,
    /// Replace the files of an earlier run in the artifact directory.
    pub overwrite: bool,
    /// Draw burn-train's dashboard (stdout is a terminal) instead of one line per epoch.
    pub dashboard: bool,
    /// Human-readable device, for the final line.
    pub device_label: String,
}

/// What a finished run reports, in d2l's terms.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Per-epoch metrics as printed.
    pub epochs: EpochLog,
    /// Where the final model record was written.
    pub model_path: PathBuf,
}

/// Loads one split, truncated to `limit`, refusing an empty result.
fn load_split(split: Split, dir: Option<&Path>, limit: Option<usize>) -> Result<FashionMnist> {
    let data = FashionMnist::load(split, dir)?.truncated(limit);
    if data.is_empty() {
        anyhow::bail!(
            "the {split:?} split is empty after --limit-{} {}; use a limit of at least 1",
            if split == Split::Train {
                "train"
            } else {
                "test"
            },
            limit.unwrap_or(0)
        );
    }
    Ok(data)
}

/// Trains AlexNet on backend `B` as `config` says, writing everything into the artifact dir.
pub fn train<B: AutodiffBackend>(
    device: B::Device,
    config: &TrainingConfig,
    options: &RunOptions,
) -> Result<TrainOutcome> {
    config.validate()?;
    let dir = &options.artifact_dir;
    let train_set = load_split(
        Split::Train,
        options.data_dir.as_deref(),
        config.limit_train,
    )?;
    let test_set = load_split(Split::Test, options.data_dir.as_deref(), config.limit_test)?;
    artifacts::prepare_run_dir(dir, options.overwrite)?;
    config
        .save(artifacts::config_path(dir))
        .with_context(|| format!("cannot write the run config into {}", dir.display()))?;

    B::seed(&device, config.seed);
    let model = Classifier::new(config.model.try_init::<B>(&device)?);
    let batcher = FashionMnistBatcher::new(config.model.image_size);
    let train_loader = DataLoaderBuilder::new(batcher.clone())
        .batch_size(config.batch_size)
        .shuffle(config.seed)
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
    let dashboard = options
        .dashboard
        .then(|| TuiMetricsRendererWrapper::new(training.interrupter(), None));
    let renderer = ProgressRenderer::new(
        config.epochs,
        log.clone(),
        dashboard.map(|d| Box::new(d) as _),
    );
    let training = training.renderer(renderer);

    let learner = Learner::new(model, SgdConfig::new().init(), config.lr);
    let result = training.launch(learner);
    drop(result.renderer); // closes the dashboard and restores the terminal

    let model_path = artifacts::model_path(dir);
    result
        .model
        .net
        .save_file(&model_path, &artifacts::recorder())
        .with_context(|| format!("cannot write the final model to {}", model_path.display()))?;
    Ok(TrainOutcome {
        epochs: log,
        model_path: model_path.with_extension("mpk"),
    })
}
