//! Adam and AdamW, as PyTorch configures them.

use burn::optim::{AdamConfig, AdamWConfig};
use burn::tensor::backend::AutodiffBackend;

use super::algorithm::{Adaptor, Algorithm, clipping, weight_decay};
use crate::run::OptimizerConfig;

impl<B: AutodiffBackend> Algorithm<B> for burn::optim::Adam {
    /// Adam with PyTorch's defaults (Burn's epsilon is 1e-5, PyTorch's 1e-8); weight decay
    /// is an L2 penalty, as `torch.optim.Adam`'s.
    fn adaptor(o: &OptimizerConfig) -> Adaptor<Self, B> {
        AdamConfig::new()
            .with_beta_1(o.beta1 as f32)
            .with_beta_2(o.beta2 as f32)
            .with_epsilon(o.eps as f32)
            .with_weight_decay(weight_decay(o))
            .with_grad_clipping(clipping(o))
            .init()
    }
}

impl<B: AutodiffBackend> Algorithm<B> for burn::optim::AdamW {
    /// AdamW with PyTorch's defaults but `weight_decay` (ours defaults to 0, PyTorch's to
    /// 0.01): decoupled, the weights shrink by `lr * weight_decay` each step.
    fn adaptor(o: &OptimizerConfig) -> Adaptor<Self, B> {
        AdamWConfig::new()
            .with_beta_1(o.beta1 as f32)
            .with_beta_2(o.beta2 as f32)
            .with_epsilon(o.eps as f32)
            .with_weight_decay(o.weight_decay as f32)
            .with_grad_clipping(clipping(o))
            .init()
    }
}
