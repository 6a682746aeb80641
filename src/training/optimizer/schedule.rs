//! The learning rate of each step: an optional linear warm-up times the main schedule, both
//! Burn's `LrScheduler`s, multiplied as Burn's `ComposedLrScheduler` does with its `Prod`
//! reduction. Composed here because Burn's composition cannot hold its step schedule.

use burn::lr_scheduler::LrScheduler;
use burn::lr_scheduler::cosine::{CosineAnnealingLrScheduler, CosineAnnealingLrSchedulerConfig};
use burn::lr_scheduler::linear::{LinearLrScheduler, LinearLrSchedulerConfig};
use burn::lr_scheduler::step::{StepLrScheduler, StepLrSchedulerConfig};
use burn::optim::LearningRate;
use burn::record::{PrecisionSettings, Record};
use burn::tensor::backend::Backend;

use crate::run::{LrSchedule, TrainingConfig};

/// The main schedule.
#[derive(Clone, Debug)]
enum Main {
    Constant(LearningRate),
    Step(StepLrScheduler),
    Cosine(CosineAnnealingLrScheduler),
}

/// The schedule of one run; its position is checkpointed with the optimizer, so a resumed run
/// continues where it stopped.
#[derive(Clone, Debug)]
pub struct Schedule {
    warmup: Option<LinearLrScheduler>,
    main: Main,
}

/// A [`Schedule`]'s position: the step counts of its parts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScheduleRecord {
    warmup: Option<usize>,
    step: Option<i32>,
    cosine: Option<usize>,
}

/// How a [`ScheduleRecord`] is stored. Also reads the empty record of the plain `f64` rate that
/// checkpoints held before schedules existed, so that those runs still resume.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ScheduleRecordItem {
    /// The positions.
    Positions {
        /// Steps of the warm-up.
        warmup: Option<usize>,
        /// Steps of the step schedule.
        step: Option<i32>,
        /// Steps of the cosine schedule.
        cosine: Option<usize>,
    },
    /// A constant rate's record: nothing.
    ConstantRate(()),
}

impl<B: Backend> Record<B> for ScheduleRecord {
    type Item<S: PrecisionSettings> = ScheduleRecordItem;

    fn into_item<S: PrecisionSettings>(self) -> ScheduleRecordItem {
        ScheduleRecordItem::Positions {
            warmup: self.warmup,
            step: self.step,
            cosine: self.cosine,
        }
    }

    fn from_item<S: PrecisionSettings>(item: ScheduleRecordItem, _: &B::Device) -> Self {
        match item {
            ScheduleRecordItem::Positions {
                warmup,
                step,
                cosine,
            } => Self {
                warmup,
                step,
                cosine,
            },
            ScheduleRecordItem::ConstantRate(()) => Self::default(),
        }
    }
}

impl Schedule {
    /// The schedule of `config` for `steps_per_epoch` optimizer steps per epoch; the config has
    /// been validated, so Burn's schedulers accept their settings.
    pub fn new(config: &TrainingConfig, steps_per_epoch: usize) -> Self {
        let o = &config.optimizer;
        let lr = config.lr;
        let invalid = |err: String| -> ! { panic!("a validated config gives a schedule: {err}") };
        let main = match o.lr_schedule {
            LrSchedule::Constant => Main::Constant(lr),
            LrSchedule::Step => {
                let epochs = o.lr_step_epochs.unwrap_or(1);
                let config =
                    StepLrSchedulerConfig::new(lr, epochs * steps_per_epoch).with_gamma(o.lr_gamma);
                Main::Step(config.init().unwrap_or_else(|e| invalid(e)))
            }
            LrSchedule::Cosine => {
                let steps = config.epochs * steps_per_epoch;
                let config = CosineAnnealingLrSchedulerConfig::new(lr, steps);
                Main::Cosine(config.init().unwrap_or_else(|e| invalid(e)))
            }
        };
        // Factors 1/W, 2/W, …, 1 over the W warm-up steps (one step needs no warm-up).
        let steps = o.warmup_epochs * steps_per_epoch;
        let warmup = (steps > 1).then(|| {
            LinearLrSchedulerConfig::new(1.0 / steps as f64, 1.0, steps - 1)
                .init()
                .unwrap_or_else(|e| invalid(e))
        });
        Self { warmup, main }
    }
}

impl LrScheduler for Schedule {
    type Record<B: Backend> = ScheduleRecord;

    fn step(&mut self) -> LearningRate {
        let factor = self.warmup.as_mut().map_or(1.0, |w| w.step());
        let lr = match &mut self.main {
            Main::Constant(lr) => *lr,
            Main::Step(s) => s.step(),
            Main::Cosine(s) => s.step(),
        };
        factor * lr
    }

    fn to_record<B: Backend>(&self) -> ScheduleRecord {
        ScheduleRecord {
            warmup: self.warmup.as_ref().map(|w| w.to_record::<B>()),
            step: match &self.main {
                Main::Step(s) => Some(s.to_record::<B>()),
                _ => None,
            },
            cosine: match &self.main {
                Main::Cosine(s) => Some(s.to_record::<B>()),
                _ => None,
            },
        }
    }

    fn load_record<B: Backend>(self, record: ScheduleRecord) -> Self {
        let warmup = match (self.warmup, record.warmup) {
            (Some(w), Some(r)) => Some(w.load_record::<B>(r)),
            (w, _) => w,
        };
        let main = match (self.main, record.step, record.cosine) {
            (Main::Step(s), Some(r), _) => Main::Step(s.load_record::<B>(r)),
            (Main::Cosine(s), _, Some(r)) => Main::Cosine(s.load_record::<B>(r)),
            (main, _, _) => main,
        };
        Self { warmup, main }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::run::OptimizerConfig;
    use burn::backend::Flex;

    fn lrs(config: &TrainingConfig, steps_per_epoch: usize, n: usize) -> Vec<f64> {
        let mut s = Schedule::new(config, steps_per_epoch);
        (0..n).map(|_| s.step()).collect()
    }

    fn with(optimizer: OptimizerConfig) -> TrainingConfig {
        TrainingConfig::d2l(65)
            .with_epochs(4)
            .with_optimizer(optimizer)
    }

    #[test]
    fn d2ls_rate_is_constant() {
        let config = TrainingConfig::d2l(65);
        assert!(lrs(&config, 3, 50).iter().all(|&lr| lr == 0.01));
    }

    #[test]
    fn step_cosine_and_warmup_follow_the_epochs() {
        let step = with(
            OptimizerConfig::new()
                .with_lr_schedule(LrSchedule::Step)
                .with_lr_step_epochs(Some(1))
                .with_lr_gamma(0.5),
        );
        let got = lrs(&step, 2, 6);
        assert_eq!(got, vec![0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025]);

        let cosine = with(OptimizerConfig::new().with_lr_schedule(LrSchedule::Cosine));
        let got = lrs(&cosine, 2, 9);
        assert_eq!(got[0], 0.01);
        assert!((got[4] - 0.005).abs() < 1e-12, "half way: {}", got[4]);
        assert!(got[8].abs() < 1e-12 && got.windows(2).all(|w| w[1] <= w[0]));

        let warm = with(OptimizerConfig::new().with_warmup_epochs(1));
        let got = lrs(&warm, 4, 6);
        let expected = [0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-12, "{got:?}");
        }
    }

    #[test]
    fn checkpoints_of_a_constant_rate_before_schedules_still_load() {
        use burn::record::Recorder;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scheduler-1");
        // What the Learner recorded for its plain f64 rate: `<f64 as LrScheduler>::Record`,
        // which is `()`.
        let recorder = crate::run::recorder();
        Recorder::<Flex>::record(&recorder, (), path.clone()).unwrap();
        let device = Default::default();
        let record: ScheduleRecord = Recorder::<Flex>::load(&recorder, path, &device).unwrap();
        assert_eq!(record, ScheduleRecord::default());
    }

    #[test]
    fn a_restored_schedule_continues_where_it_stopped() {
        let config = with(
            OptimizerConfig::new()
                .with_lr_schedule(LrSchedule::Cosine)
                .with_warmup_epochs(1),
        );
        let mut first = Schedule::new(&config, 3);
        let before: Vec<f64> = (0..5).map(|_| first.step()).collect();
        let record = first.to_record::<Flex>();
        let mut resumed = Schedule::new(&config, 3).load_record::<Flex>(record);
        let after: Vec<f64> = (0..4).map(|_| resumed.step()).collect();
        let whole = lrs(&config, 3, 9);
        assert_eq!([before, after].concat(), whole);
    }
}
