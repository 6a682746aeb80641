//! Training with burn-train's `SupervisedTraining` and `Learner`: the d2l protocol by default,
//! resumable from the newest complete checkpoint.
//!
//! [`train`] runs in three steps: `prepare` (the run directory, data, network and resume point;
//! every resume decision is in [`resume`]), `launch` (burn-train's Learner with the parts below)
//! and `finish` (the report, then the final model or why the run stopped). The learning rate
//! goes from the config to [`optimizer`], which builds the SGD and the schedule the Learner
//! steps. One epoch's numbers travel from the Learner to the files and the screen like this:
//!
//! ```text
//! Learner ──metric updates──▶ RunLogger (logger.rs)
//!    │                         ├──▶ train/, valid/: burn-train's metric logs, a line per batch
//!    │                         └──▶ EpochAccounting (epochs.rs): each batch's loss, accuracy,
//!    │                              top-3 accuracy and learning rate
//!    │                               ├──▶ ProgressLines (progress.rs): lines inside an epoch
//!    │                               └──▶ when the epoch's test pass is complete, its
//!    │                                    EpochMetrics to every EpochSink:
//!    │                                     ├─ RunFiles (epochs.rs): epochs.jsonl, metrics.csv,
//!    │                                     │  curves.svg
//!    │                                     ├─ EpochLines (renderer.rs): a line per epoch
//!    │                                     └─ EpochLog (epochs.rs): the closing lines
//!    └──metric states──▶ Renderer (renderer.rs): burn-train's dashboard, on a terminal
//! ```
//!
//! `report.json` and `report.md` are rebuilt from those files when the run ends.

mod best;
mod classifier;
mod early_stop;
mod epochs;
mod guard;
mod init;
mod interrupt;
mod logger;
pub mod optimizer;
mod progress;
mod renderer;
pub mod resume;
mod sgd;
mod throughput;
pub mod warmup;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use alexnet_model::AlexNet;

use anyhow::{Context, Result};
use burn::data::dataloader::DataLoader;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::backend::Backend;
use burn::train::checkpoint::{ComposedCheckpointingStrategy, KeepLastNCheckpoints};
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric, TopKAccuracyMetric};
use burn::train::{
    ExecutionStrategy, Interrupter, Learner, LearningComponentsMarker, MultiDeviceOptim,
    SupervisedTraining, TrainingStrategy,
};

pub use classifier::Classifier;
pub use epochs::{EpochLog, EpochSink};
pub use guard::{LossFault, LossGuard};
pub use init::InputSizeMismatch;
pub use interrupt::{Remedy, StopReason, TrainingStopped};
pub use progress::Cadence;
pub use renderer::EpochLines;
pub use resume::ResumeConflict;
pub use throughput::ExamplesPerSecond;

use crate::backend;
use crate::data::{
    Augmentation, BadImages, FashionMnist, ImageBatch, ImageFiles, ImageFolder, ImageTransform,
    Layout, LeaveOut, LoaderOptions, Purpose, ScanOptions, SkippedFile, Split, SplitImages,
    epoch_seed,
};
use crate::report::RunReport;
use crate::run::{
    self, ConfigError, EarlyStop, OptimizerKind, Overrides, RunDir, RunLock, Setting,
    TrainingConfig,
};
use best::KeepBest;
use early_stop::EarlyStopping;
use epochs::{EpochAccounting, RunFiles};
use logger::RunLogger;
use optimizer::{Algorithm, Grouped, Schedule, Sgd};
use progress::ProgressLines;
use renderer::Renderer;
use resume::Resumption;
use warmup::Phase;

/// How a run begins.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// A new run from d2l's protocol, or from a saved configuration (`base`); `overwrite`
    /// replaces an earlier run in the artifact directory.
    New {
        /// A `config.json` to start from instead of d2l's protocol.
        base: Option<PathBuf>,
        /// Replace the files of an earlier run.
        overwrite: bool,
    },
    /// Continue the run in the artifact directory from its newest complete checkpoint.
    Resume,
}

/// Where and how one training run happens, beyond its configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The artifact directory (config, logs, checkpoints, final model).
    pub artifact_dir: PathBuf,
    /// An explicit Fashion-MNIST directory, else the default search.
    pub data_dir: Option<PathBuf>,
    /// A new run, or the continuation of the one in the artifact directory.
    pub start: Start,
    /// What training prints while it runs.
    pub display: Display,
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

/// How a call to [`train`] ended.
#[derive(Debug, Clone)]
pub enum TrainOutcome {
    /// Every epoch trained; the final model is written.
    Trained {
        /// Per-epoch metrics of the epochs this process ran.
        epochs: EpochLog,
        /// Where the final model record was written.
        model_path: PathBuf,
    },
    /// A resumed run that had already trained all its epochs, or been stopped early (and
    /// `--epochs` was not raised); its final files are complete.
    AlreadyFinished(Option<EarlyStop>),
}

/// A run's configuration, checked, and for an image-folder run the scanned folder: its classes
/// and the files of each split.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The configuration, as `config.json` saves it.
    pub config: TrainingConfig,
    /// The folder's classes and files (`None` for Fashion-MNIST).
    pub folder: Option<ImageFolder>,
}

/// The run's plan: for a new run, d2l's protocol or the `base` file with `overrides` applied,
/// and the image folder it names scanned (its classes, and unless given its channels, go into
/// the config); for a resumed one, the saved configuration, which `overrides` may only extend
/// (the settings declared `may_resume`), and the saved folder split.
pub fn resolve_config(run: &RunDir, start: &Start, overrides: &Overrides) -> Result<Plan> {
    let plan = match start {
        Start::Resume => {
            let config = resume::saved_config(run, overrides)?;
            let folder = match config.data.images {
                Some(_) => Some(run.load_json(&run.images_file())?),
                None => None,
            };
            Plan { config, folder }
        }
        Start::New { base, .. } => {
            let base = match base {
                Some(file) => TrainingConfig::from_file_strict(file)?,
                None => TrainingConfig::d2l(224),
            };
            with_folder(overrides.applied_to(base), overrides)?
        }
    };
    plan.config.validate()?;
    Ok(plan)
}

/// Scans the config's image folder, if it names one, and takes its classes, and its channels
/// unless `given`: one when every image is grey, else three. A held-out fraction `given` for a
/// folder that has its own `val/` is refused rather than ignored.
fn with_folder(mut config: TrainingConfig, given: &Overrides) -> Result<Plan> {
    let Some(root) = config.data.images.clone() else {
        return Ok(Plan {
            config,
            folder: None,
        });
    };
    let options = ScanOptions {
        val_fraction: config.data.val_split,
        seed: config.seed,
        skip_bad: config.data.skip_bad_images,
        purpose: Purpose::Training,
    };
    let folder = ImageFolder::scan(&root, options)?;
    if given.given(Setting::ValSplit) && folder.layout == Layout::TrainVal {
        return Err(ConfigError::refused(
            Setting::ValSplit,
            config.data.val_split.to_string(),
            "{flag} {value} applies to a folder without train/ and val/; this one has both, \
             and val/ is what is held out",
        )
        .into());
    }
    config.data.classes = folder.classes.clone();
    config.model.num_classes = folder.classes.len();
    if !given.given(Setting::Channels) {
        config.model.in_channels = if folder.all_grey { 1 } else { 3 };
    }
    Ok(Plan {
        config,
        folder: Some(folder),
    })
}

/// Trains AlexNet on backend `B` as a [`resolve_config`]d `plan` says, on `devices` (the
/// first is the main one), writing everything into the artifact directory.
pub fn train<B: AutodiffBackend>(
    devices: Vec<B::Device>,
    plan: Plan,
    options: &RunOptions,
) -> Result<TrainOutcome> {
    let start = Instant::now();
    let run = RunDir::new(&options.artifact_dir);
    let Some(prepared) = prepare::<B>(&devices[0], plan, options)? else {
        return Ok(TrainOutcome::AlreadyFinished(run.early_stop()));
    };
    if let Some(dir) = &options.kernel_cache {
        compile_kernels::<B>(&prepared, &devices[0], dir)?;
    }
    // The Learner's type names the optimizer, so each of Burn's is a launch of its own.
    let launched = match prepared.config.optimizer.kind {
        OptimizerKind::Sgd => launch::<B, Sgd<B>>(prepared, devices, options, start),
        OptimizerKind::Adam => launch::<B, burn::optim::Adam>(prepared, devices, options, start),
        OptimizerKind::Adamw => launch::<B, burn::optim::AdamW>(prepared, devices, options, start),
    };
    finish(launched)
}

/// Everything [`launch`] needs, decided before anything is written.
struct Prepared<B: AutodiffBackend> {
    run: RunDir,
    /// This process's hold on the run directory, until training returns.
    lock: RunLock,
    config: TrainingConfig,
    train_set: SplitImages,
    test_set: SplitImages,
    model: Classifier<B>,
    /// Epochs finished before this process (0 for a new run).
    done: usize,
}

/// The artifact directory locked and made ready, the data and the network; `None` when a
/// resumed run had nothing left to train.
fn prepare<B: AutodiffBackend>(
    device: &B::Device,
    Plan { mut config, folder }: Plan,
    options: &RunOptions,
) -> Result<Option<Prepared<B>>> {
    let run = RunDir::new(&options.artifact_dir);
    let lock = run.lock()?;
    let (train_set, test_set) = match &folder {
        Some(folder) => folder_splits(folder),
        None => {
            let data_dir = options.data_dir.as_deref();
            let train = load_split(Split::Train, data_dir)?;
            (train, load_split(Split::Test, data_dir)?)
        }
    };
    let train_set = train_set.limited(config.limit_train);
    let test_set = test_set.limited(config.limit_test);
    let mut net = config.model.try_init::<B>(device)?;
    let done = match &options.start {
        Start::New { overwrite, .. } => {
            run.prepare_new(*overwrite)?;
            net = init::start_from(&mut config, net, device)?;
            0
        }
        Start::Resume => {
            match resume::prepare(&run, &config, &Classifier::new(net.clone()), device)? {
                Resumption::From(done) => done,
                Resumption::Finished(_) => return Ok(None),
            }
        }
    };
    if config.init.freeze_features {
        net = net.freeze_features();
    }
    let model = Classifier::new(net);
    if let Some(folder) = &folder {
        run.save_json(&run.images_file(), folder)?;
    }
    run.save_config(&config)?;
    Ok(Some(Prepared {
        run,
        lock,
        config,
        train_set,
        test_set,
        model,
        done,
    }))
}

/// Loads one Fashion-MNIST split.
fn load_split(split: Split, dir: Option<&Path>) -> Result<SplitImages> {
    let data = FashionMnist::load(split, dir)?;
    if data.is_empty() {
        anyhow::bail!("the {split} split of the data holds no images; use a complete data set");
    }
    Ok(SplitImages::FashionMnist(data))
}

/// An image folder's training and validation files.
fn folder_splits(folder: &ImageFolder) -> (SplitImages, SplitImages) {
    let files = |val| {
        let files = folder.files(val).to_vec();
        SplitImages::Files(ImageFiles::new(folder.root.clone(), files))
    };
    (files(false), files(true))
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
    warmup::warm_up::<B>(device, config, &phases, Some(cache), |t| {
        println!(
            "kernels: {} ready in {:.1} s ({} tuned)",
            t.phase, t.seconds, t.tuned_keys
        )
    })?;
    Ok(())
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
    /// Training and validation images that failed to decode while training.
    bad: [BadImages; 2],
    /// The early-stopping strategy, when the run has one.
    early_stop: Option<EarlyStopping>,
}

/// burn-train's parts for optimizer `X`.
type Components<B, X> = LearningComponentsMarker<B, Schedule, Classifier<B>, Grouped<X, B>>;

/// Runs burn-train's Learner with our metric logger, epoch sinks, renderer, loss guard and
/// optimizer `X`.
fn launch<B: AutodiffBackend, X: Algorithm<B>>(
    prepared: Prepared<B>,
    devices: Vec<B::Device>,
    options: &RunOptions,
    start: Instant,
) -> Launched<B> {
    let Prepared {
        run,
        lock,
        config,
        train_set,
        test_set,
        model,
        done,
    } = prepared;
    let sizes = (train_set.len(), test_set.len());
    let interrupter = Interrupter::new();
    let bad = [("training", sizes.0), ("validation", sizes.1)]
        .map(|(split, images)| bad_images(&config, &interrupter, split, images));
    let loaders = loaders::<B>(&config, done, (train_set, test_set), (&devices[0], &bad));
    let log = EpochLog::default();
    let earlier = journalled_losses(&run, done);
    // After an early stop, a run resumed with more epochs counts patience anew.
    let early_stop = config.early_stop_patience.map(|n| {
        let counted = if run.early_stop().is_some() {
            &[][..]
        } else {
            &earlier[..]
        };
        EarlyStopping::new(n, counted, log.clone())
    });
    let keep_best = KeepBest::new(&earlier, log.clone());
    let training = supervised_training::<B, X>(
        &run,
        &config,
        loaders,
        (done, &interrupter, early_stop.as_ref(), keep_best),
        devices,
    );
    let accounting = epoch_accounting(&run, &config, options, sizes, done, &interrupter, &log);
    let mut logger = RunLogger::new(&run, done + 1, interrupter.clone(), accounting);
    if options.kernel_cache.is_some() && options.display != Display::Dashboard {
        logger = logger.announce_first_step(start);
    }
    interrupt::install(interrupter.clone());
    let renderer = match options.display {
        Display::Dashboard => Renderer::dashboard(interrupter.clone(), (done > 0).then_some(done)),
        Display::Lines(_) | Display::Quiet => Renderer::lines(),
    };
    let guard = LossGuard::new(interrupter.clone());
    let learner = learner::<B, X>(model, &config, &guard, sizes.0);
    let result = training
        .with_metric_logger(logger)
        .renderer(renderer)
        .launch(learner);
    drop(result.renderer); // closes the dashboard and restores the terminal
    Launched {
        run,
        _lock: lock,
        config,
        done,
        train_len: sizes.0,
        net: result.model.net,
        log,
        guard,
        interrupter,
        bad,
        early_stop,
    }
}

/// What becomes of a split's images that fail to decode while training: the run stops at the
/// first, or with `--skip-bad-images` once an epoch loses more than its share.
fn bad_images(
    config: &TrainingConfig,
    interrupter: &Interrupter,
    split: &'static str,
    images: usize,
) -> BadImages {
    let stopper = interrupter.clone();
    let stop = move |why: &str| stopper.stop(Some(why));
    match config.data.skip_bad_images {
        false => BadImages::stop_at_first(stop),
        true => {
            let leave_out = LeaveOut {
                split,
                images,
                max_fraction: config.data.max_bad_fraction,
            };
            BadImages::leave_out(leave_out, stop)
        }
    }
}

/// The validation losses of the journalled epochs up to `done`, which the strategies that judge
/// epochs must know when a run resumes.
fn journalled_losses(run: &RunDir, done: usize) -> Vec<(usize, f64)> {
    run.read_journal()
        .into_iter()
        .filter(|(epoch, _)| *epoch <= done)
        .map(|(epoch, entry)| (epoch, entry.metrics.test_loss))
        .collect()
}

/// The loaders of one run: training batches on the autodiff backend, test batches on its inner
/// backend.
type Loaders<B> = (
    Arc<dyn DataLoader<B, ImageBatch<B>>>,
    Arc<
        dyn DataLoader<
                <B as AutodiffBackend>::InnerBackend,
                ImageBatch<<B as AutodiffBackend>::InnerBackend>,
            >,
    >,
);

/// The training and test loaders; `bad` handles a file that fails to decode. Burn draws
/// parameters lazily, at first use: seeding here fixes the initial weights. Each training epoch
/// then reseeds the backend (dropout) and draws its shuffle and augmentation from (seed,
/// epoch), so a resumed run trains on what an uninterrupted one would.
fn loaders<B: AutodiffBackend>(
    config: &TrainingConfig,
    done: usize,
    (train_set, test_set): (SplitImages, SplitImages),
    (device, [bad_train, bad_test]): (&B::Device, &[BadImages; 2]),
) -> Loaders<B> {
    let seed = config.seed;
    B::seed(device, seed);
    let reseed = device.clone();
    let options = LoaderOptions {
        batch_size: config.batch_size,
        shuffle: Some(config.data_seed()),
        num_workers: config.num_workers,
        transform: ImageTransform {
            side: config.model.image_size,
            channels: config.model.in_channels,
        },
        bad: bad_train.clone(),
        first_epoch: done + 1,
        on_epoch: Some(Arc::new(move |epoch| {
            B::seed(&reseed, epoch_seed(seed, epoch))
        })),
        augment: augmentation(config),
    };
    let test = LoaderOptions {
        bad: bad_test.clone(),
        shuffle: None,
        on_epoch: None,
        augment: Augmentation::default(),
        ..options.clone()
    };
    (
        train_set.loader::<B>(&options, device),
        test_set.loader::<B::InnerBackend>(&test, device),
    )
}

/// The random changes `config` makes to the training images, drawn from its data seed.
pub fn augmentation(config: &TrainingConfig) -> Augmentation {
    let a = &config.data.augment;
    Augmentation {
        hflip: a.hflip,
        crop: a.crop.then_some(a.crop_scale),
        pad_crop: a.pad_crop,
        seed: config.data_seed(),
    }
}

/// burn-train's runner: the metrics, checkpoints into the run directory, the number of epochs,
/// the epoch to resume from and, with several devices, data-parallel training.
#[allow(clippy::type_complexity)]
fn supervised_training<B: AutodiffBackend, X: Algorithm<B>>(
    run: &RunDir,
    config: &TrainingConfig,
    (train, test): Loaders<B>,
    (done, interrupter, early_stop, keep_best): (
        usize,
        &Interrupter,
        Option<&EarlyStopping>,
        KeepBest,
    ),
    devices: Vec<B::Device>,
) -> SupervisedTraining<Components<B, X>> {
    let mut training = SupervisedTraining::new(run.path(), train, test)
        .with_interrupter(interrupter.clone())
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .metric_train_numeric(LearningRateMetric::new())
        .metrics((ExamplesPerSecond::new(),))
        .with_file_checkpointer(run::recorder())
        .with_checkpointing_strategy(
            ComposedCheckpointingStrategy::builder()
                .add(KeepLastNCheckpoints::new(2))
                .add(keep_best)
                .build(),
        )
        .num_epochs(config.epochs);
    // Top-3 accuracy says something only with more than three classes.
    if config.model.num_classes > 3 {
        training = training.metric_valid_numeric(TopKAccuracyMetric::new(3));
    }
    if done > 0 {
        training = training.checkpoint(done);
    }
    if let Some(strategy) = early_stop {
        training = training.early_stopping(strategy.clone());
    }
    if devices.len() > 1 {
        let strategy = ExecutionStrategy::MultiDevice(devices, MultiDeviceOptim::OptimMainDevice);
        training = training.with_training_strategy(TrainingStrategy::Default(strategy));
    }
    training
}

/// The per-epoch accounting and where finished epochs go: the run's files, the caller's log
/// and, without the dashboard, a line per epoch and progress lines inside it.
fn epoch_accounting(
    run: &RunDir,
    config: &TrainingConfig,
    options: &RunOptions,
    (train_len, test_len): (usize, usize),
    done: usize,
    interrupter: &Interrupter,
    log: &EpochLog,
) -> EpochAccounting {
    let files = RunFiles::new(
        run,
        (options.device_label.clone(), config.epochs),
        done,
        interrupter.clone(),
    );
    let mut sinks: Vec<Box<dyn EpochSink>> = vec![Box::new(files), Box::new(log.clone())];
    let Display::Lines(cadence) = options.display else {
        return EpochAccounting::new((test_len, interrupter.clone()), sinks);
    };
    sinks.push(Box::new(EpochLines {
        total_epochs: config.epochs,
    }));
    let progress = ProgressLines::new(config.epochs, (train_len, test_len), cadence);
    EpochAccounting::new((test_len, interrupter.clone()), sinks).with_progress(progress)
}

/// The network with its loss guard and label smoothing, the optimizer and the schedule.
fn learner<B: AutodiffBackend, X: Algorithm<B>>(
    model: Classifier<B>,
    config: &TrainingConfig,
    guard: &LossGuard,
    train_len: usize,
) -> Learner<Components<B, X>> {
    let model = model
        .with_guard(guard.clone())
        .with_label_smoothing(config.label_smoothing);
    let steps_per_epoch = train_len.div_ceil(config.batch_size);
    Learner::new(
        model,
        Grouped::<X, B>::new(&config.optimizer),
        Schedule::new(config, steps_per_epoch),
    )
}

/// Appends the images that failed to decode to the run's `bad-images.jsonl`, for the report; a
/// failed write is a warning (the stop message or the report names them too).
fn record_bad_images(run: &RunDir, bad: &[BadImages]) {
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
fn record_early_stop<B: Backend>(
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
fn remove_stale_early_stop(run: &RunDir) -> Result<()> {
    match std::fs::remove_file(run.early_stop_file()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", run.early_stop_file().display()))
        }
        _ => Ok(()),
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
        bad,
        early_stop,
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
    Ok(TrainOutcome::Trained {
        epochs: log,
        model_path,
    })
}
