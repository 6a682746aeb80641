//! The linear layer as one autodiff node over [`crate::linear`] (all gradients in one
//! backward pass, the products on the small-batch GEMM).

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_flex::FlexTensor;

use super::{WeightedOp, apply, contiguous, flex_tensor, register_weighted, saved, values};
use crate::linear::{self as kernels, LinearShape, Wanted};

/// Outputs a layer needs to take this path: a narrow layer (a classifier's 10 outputs) is as
/// fast through Burn's matmul, whose backward pass there took a quarter of ours.
const MIN_OUTPUTS: usize = 48;

/// `layer(x)` through this crate's kernels when `B` is a flex backend and `layer` has a bias
/// and at least [`MIN_OUTPUTS`] outputs; `Err(x)` otherwise.
pub fn linear<B: Backend>(
    layer: &Linear<B>,
    x: Tensor<B, 2>,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let Some(bias) = layer.bias.as_ref() else {
        return Err(x);
    };
    let [batch, inputs] = x.dims();
    let [weight_inputs, outputs] = layer.weight.dims();
    if weight_inputs != inputs || outputs < MIN_OUTPUTS {
        return Err(x);
    }
    let op = WeightedOp {
        weight: layer.weight.val(),
        bias: bias.val(),
        shape: LinearShape {
            batch,
            inputs,
            outputs,
        },
        node: LinearBackward,
        forward,
        inference: forward,
    };
    apply(&op, x)
}

fn forward(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, s: &LinearShape) -> FlexTensor {
    let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
    let y = kernels::forward(values(&x), values(&weight), Some(values(&bias)), s);
    flex_tensor(y, [s.batch, s.outputs])
}

/// The autodiff node: the input and weight are kept for the backward pass.
#[derive(Clone, Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = (NodeId, NodeId, LinearShape);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (saved, parents) = saved(ops, grads, checkpointer);
        let s = saved.shape;
        let wanted = Wanted {
            input: saved.input_tracked,
            parameters: parents[1].is_some() || parents[2].is_some(),
        };
        let gradients = kernels::backward(
            values(&saved.x),
            values(&saved.weight),
            values(&saved.dy),
            &s,
            wanted,
        );
        register_weighted(
            grads,
            parents,
            [
                gradients.x.map(|dx| flex_tensor(dx, [s.batch, s.inputs])),
                gradients
                    .weight
                    .map(|dw| flex_tensor(dw, [s.inputs, s.outputs])),
                gradients.bias.map(|db| flex_tensor(db, [s.outputs])),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flex::Train;
    use burn::nn::LinearConfig;
    use burn::tensor::Distribution;

    /// The output and the gradients of `sum(layer(x) * g)` (input, weight, bias) through the
    /// fast path or, when `stock`, Burn's `Linear::forward`.
    fn run(
        layer: &Linear<Train>,
        x: Tensor<Train, 2>,
        g: &Tensor<Train, 2>,
        stock: bool,
    ) -> Vec<Tensor<Flex, 1>> {
        let y = match stock {
            true => layer.forward(x.clone()),
            false => linear(layer, x.clone()).unwrap_or_else(|_| panic!("fast path not taken")),
        };
        let grads = (y.clone() * g.clone()).sum().backward();
        let bias = layer.bias.as_ref().expect("a bias");
        vec![
            y.inner().flatten(0, 1),
            x.grad(&grads).expect("tracked input").flatten(0, 1),
            layer
                .weight
                .grad(&grads)
                .expect("weight gradient")
                .flatten(0, 1),
            bias.grad(&grads).expect("bias gradient"),
        ]
    }

    #[test]
    fn small_and_odd_batches_match_burns_linear_layer() {
        let device = Default::default();
        Train::seed(&device, 11);
        // Batches the register tiles take (8..=64) and ones the gemm crate takes.
        for (batch, inputs, outputs) in [
            (32, 300, 200),
            (9, 64, 50),
            (3, 40, 70),
            (70, 30, 60),
            (16, 20, 48),
        ] {
            let layer: Linear<Train> = LinearConfig::new(inputs, outputs).init(&device);
            let x = Tensor::<Train, 2>::random(
                [batch, inputs],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
            .require_grad();
            let g = Tensor::<Train, 2>::random(
                [batch, outputs],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let fast = run(&layer, x.clone(), &g, false);
            let stock = run(&layer, x, &g, true);
            for (name, (f, s)) in [
                "output",
                "input gradient",
                "weight gradient",
                "bias gradient",
            ]
            .iter()
            .zip(fast.into_iter().zip(stock))
            {
                let tolerance = 1e-5 * s.clone().abs().max().into_scalar().max(1.0);
                let diff = (f - s).abs().max().into_scalar();
                assert!(
                    diff <= tolerance,
                    "batch {batch}, {name}: max difference {diff}"
                );
            }
        }
    }

    #[test]
    fn a_frozen_layer_gives_its_input_gradient_only_at_any_batch() {
        use burn::module::Module;
        let device = Default::default();
        Train::seed(&device, 12);
        for batch in [1, 3, 9] {
            let layer: Linear<Train> = LinearConfig::new(300, 200).init(&device).no_grad();
            let x =
                Tensor::<Train, 2>::random([batch, 300], Distribution::Normal(0.0, 1.0), &device)
                    .require_grad();
            let g =
                Tensor::<Train, 2>::random([batch, 200], Distribution::Normal(0.0, 1.0), &device);
            let input_grad = |y: Tensor<Train, 2>| {
                let grads = (y * g.clone()).sum().backward();
                assert!(
                    layer.weight.grad(&grads).is_none(),
                    "batch {batch}: no weight gradient"
                );
                x.grad(&grads).expect("tracked input")
            };
            let fast = input_grad(linear(&layer, x.clone()).unwrap_or_else(|_| panic!("taken")));
            let stock = input_grad(layer.forward(x.clone()));
            let diff = (fast - stock).abs().max().into_scalar();
            assert!(
                diff < 1e-4,
                "batch {batch}: input gradients differ by {diff}"
            );
        }
    }

    #[test]
    fn inference_backend_matches_and_layers_without_bias_or_narrow_are_handed_back() {
        let device = Default::default();
        let layer: Linear<Flex> = LinearConfig::new(20, 56).init(&device);
        let x = Tensor::<Flex, 2>::random([12, 20], Distribution::Normal(0.0, 1.0), &device);
        let fast = linear(&layer, x.clone()).unwrap_or_else(|_| panic!("fast path not taken"));
        let diff = (fast - layer.forward(x.clone())).abs().max().into_scalar();
        assert!(diff < 1e-5, "max difference {diff}");
        let no_bias: Linear<Flex> = LinearConfig::new(20, 56).with_bias(false).init(&device);
        assert!(linear(&no_bias, x.clone()).is_err());
        let narrow: Linear<Flex> = LinearConfig::new(20, 10).init(&device);
        assert!(linear(&narrow, x).is_err());
    }
}
