//! The optimizer and its learning rate, from the run's config to burn-train's Learner: Burn's
//! SGD (as PyTorch configures it), Adam or AdamW ([`Grouped::new`]), the output layer as a
//! parameter group of its own when its rate differs ([`Grouped`]: Burn's optimizers have no
//! parameter groups), and the rate of each step ([`Schedule`]): an optional linear warm-up
//! times the main schedule, both Burn's `LrScheduler`s, multiplied as Burn's
//! `ComposedLrScheduler` does with its `Prod` reduction. Composed here because Burn's
//! composition cannot hold its step schedule.

use burn::grad_clipping::GradientClippingConfig;
use burn::lr_scheduler::LrScheduler;
use burn::lr_scheduler::cosine::{CosineAnnealingLrScheduler, CosineAnnealingLrSchedulerConfig};
use burn::lr_scheduler::linear::{LinearLrScheduler, LinearLrSchedulerConfig};
use burn::lr_scheduler::step::{StepLrScheduler, StepLrSchedulerConfig};
use burn::module::ParamId;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsParams, LearningRate, MultiGradientsParams, Optimizer,
    SgdConfig, SimpleOptimizer,
};
use burn::record::{PrecisionSettings, Record};
use burn::tensor::backend::{AutodiffBackend, Backend};

use super::Classifier;
use super::sgd::FusedSgd;
use crate::run::{LrSchedule, OptimizerConfig, TrainingConfig};

/// One of Burn's optimizers behind its adaptor (which clips gradients when asked).
pub type Adaptor<X, B> = OptimizerAdaptor<X, Classifier<B>, B>;

/// Burn's SGD on the inner backend, plain SGD's update fused ([`FusedSgd`]).
pub type Sgd<B> = FusedSgd<<B as AutodiffBackend>::InnerBackend>;

/// SGD as the config asks for; with the defaults, d2l's plain SGD. Momentum's dampening is 0,
/// PyTorch's default (Burn's is 0.1). The rate comes from [`Schedule`] at each step.
pub fn sgd<B: AutodiffBackend>(o: &OptimizerConfig) -> Adaptor<Sgd<B>, B> {
    let momentum = (o.momentum > 0.0).then_some(MomentumConfig {
        momentum: o.momentum,
        dampening: 0.0,
        nesterov: o.nesterov,
    });
    let plain = momentum.is_none() && o.weight_decay == 0.0;
    // Burn builds its SGD only inside an adaptor; ours wraps the SGD and adds the clipping.
    let burns: Adaptor<burn::optim::Sgd<B::InnerBackend>, B> = SgdConfig::new()
        .with_momentum(momentum)
        .with_weight_decay(weight_decay(o))
        .init();
    let adaptor = OptimizerAdaptor::from(FusedSgd::new(burns.optim().clone(), plain));
    match clipping(o) {
        Some(clipping) => adaptor.with_grad_clipping(clipping.init()),
        None => adaptor,
    }
}

/// Adam with PyTorch's defaults (Burn's epsilon is 1e-5, PyTorch's 1e-8); weight decay is an
/// L2 penalty, as `torch.optim.Adam`'s.
pub fn adam<B: AutodiffBackend>(o: &OptimizerConfig) -> Adaptor<burn::optim::Adam, B> {
    AdamConfig::new()
        .with_beta_1(o.beta1 as f32)
        .with_beta_2(o.beta2 as f32)
        .with_epsilon(o.eps as f32)
        .with_weight_decay(weight_decay(o))
        .with_grad_clipping(clipping(o))
        .init()
}

/// AdamW with PyTorch's defaults but `weight_decay` (ours defaults to 0, PyTorch's to 0.01):
/// decoupled, the weights shrink by `lr * weight_decay` each step.
pub fn adamw<B: AutodiffBackend>(o: &OptimizerConfig) -> Adaptor<burn::optim::AdamW, B> {
    AdamWConfig::new()
        .with_beta_1(o.beta1 as f32)
        .with_beta_2(o.beta2 as f32)
        .with_epsilon(o.eps as f32)
        .with_weight_decay(o.weight_decay as f32)
        .with_grad_clipping(clipping(o))
        .init()
}

fn weight_decay(o: &OptimizerConfig) -> Option<WeightDecayConfig> {
    (o.weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: o.weight_decay as f32,
    })
}

fn clipping(o: &OptimizerConfig) -> Option<GradientClippingConfig> {
    o.clip_grad_norm
        .map(|x| GradientClippingConfig::Norm(x as f32))
}

/// The optimizers a run can use, each named by [`OptimizerKind`].
pub trait Algorithm<B: AutodiffBackend>: SimpleOptimizer<B::InnerBackend> + 'static {
    /// The optimizer `o` asks for.
    fn adaptor(o: &OptimizerConfig) -> Adaptor<Self, B>;
}

impl<B: AutodiffBackend> Algorithm<B> for Sgd<B> {
    fn adaptor(o: &OptimizerConfig) -> Adaptor<Self, B> {
        sgd(o)
    }
}

impl<B: AutodiffBackend> Algorithm<B> for burn::optim::Adam {
    fn adaptor(o: &OptimizerConfig) -> Adaptor<Self, B> {
        adam(o)
    }
}

impl<B: AutodiffBackend> Algorithm<B> for burn::optim::AdamW {
    fn adaptor(o: &OptimizerConfig) -> Adaptor<Self, B> {
        adamw(o)
    }
}

/// The state of every parameter, as Burn's adaptor records it.
type States<X, B> = <Adaptor<X, B> as Optimizer<Classifier<B>, B>>::Record;

/// The Learner's optimizer: one of Burn's, and, when `--head-lr-mult` is not 1, a second one
/// of the same kind for the output layer, stepped at `lr * mult` with its own state: PyTorch's
/// parameter groups, so the difference is exact for SGD, momentum, weight decay and both
/// Adams. Its record is the adaptor's, the two groups' states side by side (parameter ids are
/// disjoint), so checkpoints read the same with or without a head group.
#[derive(Clone)]
pub struct Grouped<X: SimpleOptimizer<B::InnerBackend>, B: AutodiffBackend> {
    body: Adaptor<X, B>,
    head: Option<Head<X, B>>,
}

#[derive(Clone)]
struct Head<X: SimpleOptimizer<B::InnerBackend>, B: AutodiffBackend> {
    optim: Adaptor<X, B>,
    lr_mult: f64,
    /// A loaded record not yet split between the groups: the output layer's parameter ids are
    /// known at the first step (a checkpoint restores them).
    unsplit: Option<States<X, B>>,
}

impl<X: Algorithm<B>, B: AutodiffBackend> Grouped<X, B> {
    /// The optimizer `o` asks for.
    pub fn new(o: &OptimizerConfig) -> Self {
        let head = (o.head_lr_mult != 1.0).then(|| Head {
            optim: X::adaptor(o),
            lr_mult: o.head_lr_mult,
            unsplit: None,
        });
        Self {
            body: X::adaptor(o),
            head,
        }
    }
}

/// The output layer's parameter ids.
fn head_ids<B: AutodiffBackend>(module: &Classifier<B>) -> (ParamId, Option<ParamId>) {
    let (weight, bias) = module.net.head();
    (weight.id, bias.map(|b| b.id))
}

/// Moves the output layer's gradients (kept on the inner backend) out of `grads`.
fn take_head<B: AutodiffBackend>(
    grads: &mut GradientsParams,
    (weight, bias): (ParamId, Option<ParamId>),
) -> GradientsParams {
    let mut head = GradientsParams::new();
    if let Some(grad) = grads.remove::<B::InnerBackend, 2>(weight) {
        head.register(weight, grad);
    }
    if let Some(grad) = bias.and_then(|id| grads.remove::<B::InnerBackend, 1>(id)) {
        head.register(bias.expect("just read"), grad);
    }
    head
}

impl<X: SimpleOptimizer<B::InnerBackend>, B: AutodiffBackend> Grouped<X, B> {
    /// Splits a loaded record between the groups, once the head's ids are known.
    fn split_loaded(&mut self, ids: (ParamId, Option<ParamId>)) {
        let Some(head) = &mut self.head else { return };
        let Some(mut states) = head.unsplit.take() else {
            return;
        };
        let mut head_states = States::<X, B>::default();
        for id in [Some(ids.0), ids.1].into_iter().flatten() {
            if let Some(state) = states.remove(&id) {
                head_states.insert(id, state);
            }
        }
        head.optim = head.optim.clone().load_record(head_states);
        self.body = self.body.clone().load_record(states);
    }
}

impl<X: SimpleOptimizer<B::InnerBackend>, B: AutodiffBackend> Optimizer<Classifier<B>, B>
    for Grouped<X, B>
{
    type Record = States<X, B>;

    fn step(
        &mut self,
        lr: LearningRate,
        module: Classifier<B>,
        mut grads: GradientsParams,
    ) -> Classifier<B> {
        if self.head.is_none() {
            return self.body.step(lr, module, grads);
        }
        let ids = head_ids(&module);
        self.split_loaded(ids);
        let head_grads = take_head::<B>(&mut grads, ids);
        let module = self.body.step(lr, module, grads);
        let head = self.head.as_mut().expect("checked above");
        head.optim.step(lr * head.lr_mult, module, head_grads)
    }

    fn step_multi(
        &mut self,
        lr: LearningRate,
        module: Classifier<B>,
        mut grads: MultiGradientsParams,
    ) -> Classifier<B> {
        if self.head.is_none() {
            return self.body.step_multi(lr, module, grads);
        }
        let ids = head_ids(&module);
        self.split_loaded(ids);
        let head_grads = MultiGradientsParams {
            grads: grads
                .grads
                .iter_mut()
                .map(|(g, device)| (take_head::<B>(g, ids), *device))
                .collect(),
        };
        let module = self.body.step_multi(lr, module, grads);
        let head = self.head.as_mut().expect("checked above");
        head.optim.step_multi(lr * head.lr_mult, module, head_grads)
    }

    fn to_record(&self) -> States<X, B> {
        let mut states = self.body.to_record();
        if let Some(head) = self.head.as_ref().filter(|h| h.unsplit.is_none()) {
            states.extend(head.optim.to_record());
        }
        states
    }

    fn load_record(mut self, states: States<X, B>) -> Self {
        if let Some(head) = &mut self.head {
            head.unsplit = Some(states.clone());
        }
        self.body = self.body.load_record(states);
        self
    }
}

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
    fn the_head_moves_mult_times_as_far_on_the_same_gradient() {
        use burn::backend::Autodiff;
        use burn::tensor::{Distribution, Tensor};
        type B = Autodiff<Flex>;
        let device = Default::default();
        B::seed(&device, 3);
        let net = alexnet_model::AlexNetConfig::new()
            .with_image_size(65)
            .with_dropout(0.0)
            .init::<B>(&device);
        let model = Classifier::new(net);
        let images =
            Tensor::<B, 4>::random([4, 1, 65, 65], Distribution::Uniform(0.0, 1.0), &device);
        let targets = Tensor::from_ints([1, 2, 3, 4], &device);
        let grads = || {
            let batch = crate::data::ImageBatch {
                images: images.clone(),
                targets: targets.clone(),
            };
            let loss = model.forward_classification(batch).loss;
            GradientsParams::from_grads(loss.backward(), &model)
        };
        let values = |m: &Classifier<B>| {
            let head = m.net.head().0.val().into_data().to_vec::<f32>().unwrap();
            (m.net.feature_values(), head)
        };
        let (body, head) = values(&model);
        // One step with weight decay; two with momentum (its state then counts), without
        // decay, which would see the weights the first step moved.
        for (momentum, decay, steps) in [(0.0, 0.01, 1), (0.9, 0.0, 2)] {
            let moved = |mult: f64| {
                let config = OptimizerConfig::new()
                    .with_head_lr_mult(mult)
                    .with_momentum(momentum)
                    .with_weight_decay(decay);
                let mut optim = Grouped::<Sgd<B>, B>::new(&config);
                let mut stepped = model.clone();
                for _ in 0..steps {
                    stepped = optim.step(0.1, stepped, grads());
                }
                values(&stepped)
            };
            let ((body1, head1), (body10, head10)) = (moved(1.0), moved(10.0));
            assert_eq!(body1, body10, "the body moves as without a group");
            assert_ne!(body1, body, "the body moves");
            for ((h, h1), h10) in head.iter().zip(&head1).zip(&head10) {
                let (d1, d10) = ((h1 - h) as f64, (h10 - h) as f64);
                // Each stored f32 weight is rounded once per step, by half an ulp of its own
                // size: ten times d1 carries ten of h1's roundings, d10 those of h10 (which
                // moved ten times as far, so may be ten times larger than h).
                let size = |w: &f32| (*w as f64).abs();
                let ulps = size(h10) + 10.0 * size(h1) + 11.0 * size(h);
                let rounding = 2.0 * steps as f64 * f32::EPSILON as f64 * ulps;
                assert!((d10 - 10.0 * d1).abs() <= rounding, "{d1} {d10}");
            }
            assert_ne!(head1, head10);
        }
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
