//! The third step: burn-train's Learner with this crate's parts (metric logger, epoch sinks,
//! renderer, loss guard, checkpointing and early-stopping strategies, optimizer and schedule),
//! run to the end of the epochs or to a stop.

use std::time::Instant;

use alexnet_model::AlexNet;
use burn::tensor::backend::AutodiffBackend;
use burn::train::checkpoint::{ComposedCheckpointingStrategy, KeepLastNCheckpoints};
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric, TopKAccuracyMetric};
use burn::train::{
    ExecutionStrategy, Interrupter, Learner, LearningComponentsMarker, MultiDeviceOptim,
    SupervisedTraining, TrainingStrategy,
};

use super::best::KeepBest;
use super::classifier::Classifier;
use super::early_stop::EarlyStopping;
use super::epochs::{EpochAccounting, EpochLog, EpochSink, RunFiles};
use super::guard::LossGuard;
use super::interrupt;
use super::loaders::{Loaders, bad_images, loaders};
use super::logger::RunLogger;
use super::optimizer::{Algorithm, Grouped, Schedule};
use super::options::{Display, RunOptions};
use super::prepare::Prepared;
use super::progress::ProgressLines;
use super::renderer::{EpochLines, Renderer};
use super::throughput::ExamplesPerSecond;
use crate::data::{BadImages, SplitImages};
use crate::run::{self, RunDir, RunLock, TrainingConfig};

/// What [`launch`] leaves for [`finish`].
pub struct Launched<B: AutodiffBackend> {
    pub run: RunDir,
    pub _lock: RunLock,
    pub config: TrainingConfig,
    pub done: usize,
    pub train_len: usize,
    pub net: AlexNet<B::InnerBackend>,
    pub log: EpochLog,
    pub guard: LossGuard,
    pub interrupter: Interrupter,
    /// Training and validation images that failed to decode while training.
    pub bad: [BadImages; 2],
    /// The early-stopping strategy, when the run has one.
    pub early_stop: Option<EarlyStopping>,
    /// The images the run validates on, which the final model is then assessed on.
    pub test_set: SplitImages,
}

/// burn-train's parts for optimizer `X`.
pub type Components<B, X> = LearningComponentsMarker<B, Schedule, Classifier<B>, Grouped<X, B>>;

/// Runs burn-train's Learner with our metric logger, epoch sinks, renderer, loss guard and
/// optimizer `X`.
pub fn launch<B: AutodiffBackend, X: Algorithm<B>>(
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
    let held_out = test_set.clone();
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
        test_set: held_out,
    }
}

/// The validation losses of the journalled epochs up to `done`, which the strategies that judge
/// epochs must know when a run resumes.
pub fn journalled_losses(run: &RunDir, done: usize) -> Vec<(usize, f64)> {
    run.read_journal()
        .into_iter()
        .filter(|(epoch, _)| *epoch <= done)
        .map(|(epoch, entry)| (epoch, entry.metrics.test_loss))
        .collect()
}

/// burn-train's runner: the metrics, checkpoints into the run directory, the number of epochs,
/// the epoch to resume from and, with several devices, data-parallel training.
#[allow(clippy::type_complexity)]
pub fn supervised_training<B: AutodiffBackend, X: Algorithm<B>>(
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
pub fn epoch_accounting(
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
pub fn learner<B: AutodiffBackend, X: Algorithm<B>>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{EpochMetrics, JournalEntry};

    #[test]
    fn the_strategies_of_a_resumed_run_know_its_earlier_losses() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        for (epoch, loss) in [(1, 2.0), (2, 1.5), (3, 1.7)] {
            let metrics = EpochMetrics {
                epoch,
                test_loss: loss,
                ..EpochMetrics::default()
            };
            let entry = JournalEntry {
                metrics,
                device: "cpu".into(),
            };
            run.append_journal(&entry).unwrap();
        }
        assert_eq!(journalled_losses(&run, 2), [(1, 2.0), (2, 1.5)]);
        assert!(journalled_losses(&run, 0).is_empty());
    }
}
