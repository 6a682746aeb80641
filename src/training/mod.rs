//! Training with burn-train's `SupervisedTraining` + `Learner`: the d2l protocol by default,
//! resumable from the newest complete checkpoint. [`train`] reads in three phases: prepare
//! (config, data, resume point, directory), launch, finish.

mod classifier;
mod config;
mod epochs;
mod guard;
mod interrupt;
mod logger;
mod progress;
mod renderer;
mod resume;
mod schedule;
mod throughput;
pub mod warmup;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use alexnet_model::AlexNet;

use anyhow::Result;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::grad_clipping::GradientClippingConfig;
use burn::optim::SgdConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric, TopKAccuracyMetric};
use burn::train::{
    ExecutionStrategy, Interrupter, Learner, MultiDeviceOptim, SupervisedTraining, TrainingStrategy,
};

pub use classifier::Classifier;
pub use config::{ConfigFlags, ResumeConflict};
pub use epochs::{EpochLog, EpochSink};
pub use guard::{LossFault, LossGuard};
pub use interrupt::{StopReason, TrainingStopped};
pub use renderer::EpochLines;
pub use throughput::ExamplesPerSecond;

use crate::backend;
use crate::data::{FashionMnist, FashionMnistBatch, FashionMnistBatcher, Split};
use crate::report::RunReport;
use crate::run::{self, OptimizerConfig, RunDir, RunLock, TrainingConfig};
use epochs::{EpochAccounting, RunFiles};
use logger::RunLogger;
pub use progress::Cadence;
use progress::ProgressLines;
use renderer::Renderer;
use schedule::Schedule;
use warmup::Phase;

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
    /// What training prints while it runs.
    pub display: Display,
    /// A configuration file to start from (`--config`) instead of d2l's protocol.
    pub config_file: Option<PathBuf>,
    /// Backend and device, for the journal and report.
    pub device_label: String,
    /// The GPU kernel cache in use; on a GPU backend, training first compiles and tunes the
    /// kernels of its steps there, saying so, rather than leaving the first minutes silent.
    pub kernel_cache: Option<PathBuf>,
}

/// What training prints while it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Display {
    /// burn-train's dashboard (stdout is a terminal).
    Dashboard,
    /// A line per finished epoch, and progress lines inside each epoch.
    Lines(Cadence),
    /// Nothing until the closing lines (`--quiet`).
    Quiet,
}

/// What a finished run reports, in d2l's terms.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Per-epoch metrics of the epochs this process ran.
    pub epochs: EpochLog,
    /// Where the final model record was written.
    pub model_path: PathBuf,
}

/// Everything [`launch`] needs, decided before anything is written.
struct Prepared<B: AutodiffBackend> {
    run: RunDir,
    /// This process's hold on the run directory, until training returns.
    lock: RunLock,
    config: TrainingConfig,
    train_set: FashionMnist,
    test_set: FashionMnist,
    model: Classifier<B>,
    /// The epoch to resume from, if any.
    resume_from: Option<usize>,
}

impl<B: AutodiffBackend> Prepared<B> {
    /// Epochs finished before this process.
    fn done(&self) -> usize {
        self.resume_from.unwrap_or(0)
    }
}

/// Trains AlexNet on backend `B` on `devices` (the first is the main one), writing everything
/// into the artifact directory.
///
/// Returns `None` when resuming a run that already finished all its epochs.
pub fn train<B: AutodiffBackend>(
    devices: Vec<B::Device>,
    flags: &ConfigFlags,
    options: &RunOptions,
) -> Result<Option<TrainOutcome>> {
    let start = Instant::now();
    let Some(prepared) = prepare::<B>(&devices[0], flags, options)? else {
        return Ok(None);
    };
    if let Some(dir) = &options.kernel_cache {
        compile_kernels::<B>(&prepared, &devices[0], dir)?;
    }
    let launched = launch(prepared, devices, options, start);
    finish(launched).map(Some)
}

/// The run's configuration, checked: the saved one on `--resume`, else the `--config` file or
/// d2l's protocol, with the flags over it.
pub fn resolve_config(flags: &ConfigFlags, options: &RunOptions) -> Result<TrainingConfig> {
    let config = match options.resume {
        true => resume::saved_config(&RunDir::new(&options.artifact_dir), flags)?,
        false => {
            let file = options.config_file.as_deref();
            flags.fresh(file.map(TrainingConfig::from_file_strict).transpose()?)
        }
    };
    config.validate()?;
    Ok(config)
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

/// The config, data, model and resume point; the artifact directory locked and made ready.
/// `None` when a resumed run has nothing left to do (after completing what a kill may have cut
/// short at its very end).
fn prepare<B: AutodiffBackend>(
    device: &B::Device,
    flags: &ConfigFlags,
    options: &RunOptions,
) -> Result<Option<Prepared<B>>> {
    let run = RunDir::new(&options.artifact_dir);
    let config = resolve_config(flags, options)?;
    let lock = run.lock()?;
    let data_dir = options.data_dir.as_deref();
    let train_set = load_split(Split::Train, data_dir, config.limit_train)?;
    let test_set = load_split(Split::Test, data_dir, config.limit_test)?;

    let model = Classifier::new(config.model.try_init::<B>(device)?);
    let resume_from = match options.resume {
        true => resume::newest_good_checkpoint(&run, &model, device),
        false => None,
    };
    if let Some(done) = resume_from.filter(|&done| done >= config.epochs) {
        resume::finish_completed(&run, (&config, done), &model, device)?;
        println!(
            "nothing to resume: the run in {} finished all {} epochs (raise --epochs to train further)",
            run.path().display(),
            config.epochs
        );
        return Ok(None);
    }
    match options.resume {
        true => resume::forget_after(&run, resume_from.unwrap_or(0))?,
        false => run.prepare_new(options.overwrite)?,
    }
    run.save_config(&config)?;
    Ok(Some(Prepared {
        run,
        lock,
        config,
        train_set,
        test_set,
        model,
        resume_from,
    }))
}

/// Compiles and tunes the kernels of this run's steps before the Learner starts (and before
/// the seed is set, so the run's numbers do not change), one line per step.
fn compile_kernels<B: AutodiffBackend>(
    prepared: &Prepared<B>,
    device: &B::Device,
    cache: &Path,
) -> Result<()> {
    let config = &prepared.config;
    println!(
        "kernels: compiling and tuning the GPU kernels of this run ({} tuned kernels cached in \
         {}; `alexnet warmup` does this once, ahead)",
        backend::count_tuned_keys(cache),
        cache.display()
    );
    let phases = Phase::of_training(
        config.batch_size,
        prepared.train_set.len(),
        prepared.test_set.len(),
    );
    warmup::warm_up::<B>(device, config.model.image_size, &phases, Some(cache), |t| {
        println!(
            "kernels: {} ready in {:.1} s ({} tuned)",
            t.phase, t.seconds, t.tuned_keys
        )
    })?;
    Ok(())
}

/// The training and test loaders. Burn draws parameters lazily, at first use: seeding here
/// still fixes the initial weights. A resumed run draws fresh shuffles and dropout masks rather
/// than replaying epoch 1's.
#[allow(clippy::type_complexity)]
fn loaders<B: AutodiffBackend>(
    config: &TrainingConfig,
    done: usize,
    (train_set, test_set): (FashionMnist, FashionMnist),
    device: &B::Device,
) -> (
    Arc<dyn DataLoader<B, FashionMnistBatch<B>>>,
    Arc<dyn DataLoader<B::InnerBackend, FashionMnistBatch<B::InnerBackend>>>,
) {
    let seed = config.seed.wrapping_add(done as u64);
    B::seed(device, seed);
    let batcher = FashionMnistBatcher::new(config.model.image_size);
    let train = DataLoaderBuilder::new(batcher.clone())
        .batch_size(config.batch_size)
        .shuffle(seed)
        .num_workers(config.num_workers)
        .set_device(device.clone())
        .build(train_set);
    let test = DataLoaderBuilder::new(batcher)
        .batch_size(config.batch_size)
        .num_workers(config.num_workers)
        .set_device(device.clone())
        .build(test_set);
    (train, test)
}

/// SGD as the config asks for; with the defaults, d2l's plain SGD. Momentum's dampening is 0,
/// PyTorch's default (Burn's is 0.1).
fn sgd(o: &OptimizerConfig) -> SgdConfig {
    let momentum = (o.momentum > 0.0).then_some(MomentumConfig {
        momentum: o.momentum,
        dampening: 0.0,
        nesterov: o.nesterov,
    });
    let weight_decay = (o.weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: o.weight_decay as f32,
    });
    let clipping = o
        .clip_grad_norm
        .map(|x| GradientClippingConfig::Norm(x as f32));
    SgdConfig::new()
        .with_momentum(momentum)
        .with_weight_decay(weight_decay)
        .with_gradient_clipping(clipping)
}

/// What [`launch`] leaves for [`finish`].
struct Launched<B: AutodiffBackend> {
    run: RunDir,
    _lock: RunLock,
    config: TrainingConfig,
    done: usize,
    train_len: usize,
    net: AlexNet<B::InnerBackend>,
    log: EpochLog,
    guard: LossGuard,
    interrupter: Interrupter,
}

/// Runs burn-train's Learner with our metric logger, epoch sinks, renderer and loss guard.
fn launch<B: AutodiffBackend>(
    prepared: Prepared<B>,
    devices: Vec<B::Device>,
    options: &RunOptions,
    start: Instant,
) -> Launched<B> {
    let done = prepared.done();
    let Prepared {
        run,
        lock,
        config,
        train_set,
        test_set,
        model,
        resume_from,
    } = prepared;
    let (train_len, test_len) = (train_set.len(), test_set.len());
    let (train_loader, test_loader) =
        loaders::<B>(&config, done, (train_set, test_set), &devices[0]);
    let training = SupervisedTraining::new(run.path(), train_loader, test_loader)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .metric_train_numeric(LearningRateMetric::new())
        .metric_valid_numeric(TopKAccuracyMetric::new(3))
        .metrics((ExamplesPerSecond::new(),))
        .with_file_checkpointer(run::recorder())
        .num_epochs(config.epochs);
    let interrupter = training.interrupter();

    let log = EpochLog::default();
    let mut sinks: Vec<Box<dyn EpochSink>> = vec![
        Box::new(RunFiles::new(
            &run,
            (options.device_label.clone(), config.epochs),
            done,
            interrupter.clone(),
        )),
        Box::new(log.clone()),
    ];
    if let Display::Lines(_) = options.display {
        sinks.push(Box::new(EpochLines {
            total_epochs: config.epochs,
        }));
    }
    let mut accounting = EpochAccounting::new(test_len, sinks);
    if let Display::Lines(cadence) = options.display {
        let sizes = (train_len, test_len);
        accounting = accounting.with_progress(ProgressLines::new(config.epochs, sizes, cadence));
    }
    let mut logger = RunLogger::new(&run, done + 1, interrupter.clone(), accounting);
    if options.kernel_cache.is_some() && options.display != Display::Dashboard {
        logger = logger.announce_first_step(start);
    }
    let mut training = training.with_metric_logger(logger);
    if let Some(epoch) = resume_from {
        training = training.checkpoint(epoch);
    }
    if devices.len() > 1 {
        let strategy = ExecutionStrategy::MultiDevice(devices, MultiDeviceOptim::OptimMainDevice);
        training = training.with_training_strategy(TrainingStrategy::Default(strategy));
    }
    interrupt::install(interrupter.clone());
    let renderer = match options.display {
        Display::Dashboard => Renderer::dashboard(interrupter.clone(), resume_from),
        Display::Lines(_) | Display::Quiet => Renderer::lines(),
    };
    let training = training.renderer(renderer);

    let guard = LossGuard::new(interrupter.clone());
    let steps_per_epoch = train_len.div_ceil(config.batch_size);
    let learner = Learner::new(
        model
            .with_guard(guard.clone())
            .with_label_smoothing(config.label_smoothing),
        sgd(&config.optimizer).init(),
        Schedule::new(&config, steps_per_epoch),
    );
    let result = training.launch(learner);
    drop(result.renderer); // closes the dashboard and restores the terminal
    Launched {
        run,
        _lock: lock,
        config,
        done,
        train_len,
        net: result.model.net,
        log,
        guard,
        interrupter,
    }
}

/// Writes the report, then either the final model or the reason the run stopped early.
fn finish<B: AutodiffBackend>(launched: Launched<B>) -> Result<TrainOutcome> {
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
    } = launched;
    // burn-train has flushed its logs by now: the report reads them. A run stopped by a fault
    // (a full disk) says so once; its report is rebuilt when it resumes.
    let report = RunReport::from_run(&run).and_then(|r| r.save(&run));
    let finished = log.epochs().last().map(|e| e.epoch) == Some(config.epochs);
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
        let reason = StopReason::from_interrupter(&interrupter, loss_fault);
        let last_done = log.epochs().last().map_or(done, |e| e.epoch);
        return Err(TrainingStopped {
            reason,
            epoch: last_done + 1,
            kept: run.complete_checkpoints().last().copied(),
            dir: run.path().display().to_string(),
        }
        .into());
    }
    let model_path = run.save_model(&net)?;
    Ok(TrainOutcome {
        epochs: log,
        model_path,
    })
}
