//! SGD: Burn's, as the config asks for it, with plain SGD's update (no momentum, no weight decay:
//! d2l's) in one fused pass on the flex backend. Burn's two passes and new buffer were 11% of a
//! training step at 96 px and batch 32 (21 ms for 21.6 million weights on an Intel Xeon); the fused
//! pass writes into the gradient's buffer and rounds as Burn does, so the weights are bit for bit
//! Burn's. The state is Burn's `SgdState`, so checkpoints read the same either way.

use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{LearningRate, SgdConfig, SgdState, SimpleOptimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use super::algorithm::{Adaptor, Algorithm, clipping, weight_decay};
use crate::run::OptimizerConfig;

/// Burn's SGD on the inner backend, plain SGD's update fused ([`FusedSgd`]).
pub type Sgd<B> = FusedSgd<<B as AutodiffBackend>::InnerBackend>;

impl<B: AutodiffBackend> Algorithm<B> for Sgd<B> {
    /// SGD as the config asks for; with the defaults, d2l's plain SGD. Momentum's dampening
    /// is 0, PyTorch's default (Burn's is 0.1). The rate comes from the schedule at each step.
    fn adaptor(o: &OptimizerConfig) -> Adaptor<Self, B> {
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
}

/// Burn's [`burn::optim::Sgd`], fused when `plain`.
#[derive(Clone)]
pub struct FusedSgd<B: Backend> {
    burns: burn::optim::Sgd<B>,
    /// Neither momentum nor weight decay: the update is `w - lr * g`.
    plain: bool,
}

impl<B: Backend> FusedSgd<B> {
    pub fn new(burns: burn::optim::Sgd<B>, plain: bool) -> Self {
        Self { burns, plain }
    }
}

impl<B: Backend> SimpleOptimizer<B> for FusedSgd<B> {
    type State<const D: usize> = SgdState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        if !self.plain {
            return self.burns.step(lr, tensor, grad, state);
        }
        match fused(tensor, grad, lr) {
            // What Burn's plain step keeps: a state without momentum.
            Ok(stepped) => (stepped, Some(SgdState::new(None))),
            Err((tensor, grad)) => self.burns.step(lr, tensor, grad, state),
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        burn::optim::Sgd::<B>::to_device(state, device)
    }
}

/// The fused update where this build has it for backend `B`.
#[allow(clippy::type_complexity)]
fn fused<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    grad: Tensor<B, D>,
    lr: LearningRate,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
    #[cfg(feature = "flex")]
    return alexnet_kernels::flex::sgd_step(tensor, grad, lr);
    #[cfg(not(feature = "flex"))]
    {
        let _ = lr;
        Err((tensor, grad))
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::optim::SgdConfig;
    use burn::optim::adaptor::OptimizerAdaptor;
    use burn::optim::momentum::MomentumConfig;
    use burn::tensor::Distribution;

    fn burns(momentum: Option<MomentumConfig>) -> burn::optim::Sgd<Flex> {
        type Train = burn::backend::Autodiff<Flex>;
        // Burn builds its SGD only inside an adaptor, for some module.
        let adaptor: OptimizerAdaptor<_, burn::nn::Linear<Train>, Train> =
            SgdConfig::new().with_momentum(momentum).init();
        adaptor.optim().clone()
    }

    /// Two steps of `optimizer` from the same weights and gradient.
    fn two_steps(optimizer: &impl SimpleOptimizer<Flex>) -> Vec<f32> {
        let device = Default::default();
        Flex::seed(&device, 5);
        let mut weight =
            Tensor::<Flex, 2>::random([64, 40], Distribution::Normal(0.0, 1.0), &device);
        let grad = Tensor::<Flex, 2>::random([64, 40], Distribution::Normal(0.0, 1.0), &device);
        let mut state = None;
        for _ in 0..2 {
            (weight, state) = optimizer.step(0.1, weight, grad.clone(), state);
        }
        weight.into_data().to_vec().unwrap()
    }

    #[test]
    fn plain_and_momentum_steps_equal_burns_bit_for_bit() {
        let plain = burns(None);
        assert_eq!(
            two_steps(&FusedSgd::new(plain.clone(), true)),
            two_steps(&plain)
        );
        let momentum = burns(Some(MomentumConfig {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
        }));
        let fused = two_steps(&FusedSgd::new(momentum.clone(), false));
        assert_eq!(fused, two_steps(&momentum));
        assert_ne!(
            fused,
            two_steps(&plain),
            "momentum counts in the second step"
        );
    }
}
