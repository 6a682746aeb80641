//! What every optimizer of a run shares: Burn's adaptor around it, the trait that builds it from
//! the config, and the weight decay and gradient clipping the config asks for.

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::SimpleOptimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::tensor::backend::AutodiffBackend;

use super::super::classifier::Classifier;
use crate::run::OptimizerConfig;

/// One of Burn's optimizers behind its adaptor (which clips gradients when asked).
pub type Adaptor<X, B> = OptimizerAdaptor<X, Classifier<B>, B>;

/// The optimizers a run can use, each named by [`OptimizerKind`].
pub trait Algorithm<B: AutodiffBackend>: SimpleOptimizer<B::InnerBackend> + 'static {
    /// The optimizer `o` asks for.
    fn adaptor(o: &OptimizerConfig) -> Adaptor<Self, B>;
}

/// The weight decay `o` asks for, an L2 penalty on the gradient.
pub fn weight_decay(o: &OptimizerConfig) -> Option<WeightDecayConfig> {
    (o.weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: o.weight_decay as f32,
    })
}

/// The gradient clipping `o` asks for.
pub fn clipping(o: &OptimizerConfig) -> Option<GradientClippingConfig> {
    o.clip_grad_norm
        .map(|x| GradientClippingConfig::Norm(x as f32))
}
