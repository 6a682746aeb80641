//! The output layer as a parameter group of its own: Burn's optimizers have no parameter
//! groups, PyTorch's fine-tuning recipes give a new head a larger rate.

use burn::module::ParamId;
use burn::optim::{
    GradientsParams, LearningRate, MultiGradientsParams, Optimizer, SimpleOptimizer,
};
use burn::tensor::backend::AutodiffBackend;

use super::super::classifier::Classifier;
use super::algorithm::{Adaptor, Algorithm};
use crate::run::OptimizerConfig;

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

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::super::sgd::Sgd;
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::backend::Backend;

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
}
