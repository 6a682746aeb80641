//! Convolution as one autodiff node over [`crate::conv`] (Winograd, direct convolution or
//! im2col + GEMM; all gradients in one backward pass).

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorMetadata};
use burn_flex::FlexTensor;

use super::kept_kernels::kept_kernels;
use super::{WeightedOp, apply, contiguous, flex_tensor, register_weighted, saved, values};
use crate::any_backend::conv_shape;
use crate::conv::{self as kernels, ConvShape};
use crate::winograd;

/// `conv(x)` through this crate's kernels when `B` is a flex backend and `conv` is a plain
/// convolution (one group, no dilation, a bias, no `Same` padding); `Err(x)` otherwise.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let (Some(shape), Some(bias)) = (conv_shape(conv, x.dims(), false), conv.bias.as_ref()) else {
        return Err(x);
    };
    let op = WeightedOp {
        weight: conv.weight.val(),
        bias: bias.val(),
        shape,
        node: ConvBackward,
        forward,
        inference,
    };
    apply(&op, x)
}

fn forward(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, s: &ConvShape) -> FlexTensor {
    let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
    let y = kernels::forward(values(&x), values(&weight), Some(values(&bias)), s);
    output_tensor(y, s)
}

/// A convolution's output values as its `[B, O, H, W]` tensor.
fn output_tensor(y: Vec<f32>, s: &ConvShape) -> FlexTensor {
    flex_tensor(y, [s.batch, s.channels_out, s.output[0], s.output[1]])
}

/// [`forward`] with Winograd's transformed kernels kept from call to call ([`kept_kernels`]).
fn inference(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, s: &ConvShape) -> FlexTensor {
    let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
    let Some(kernels) = kept_kernels(&weight, s) else {
        return forward(x, weight, bias, s);
    };
    let y = winograd::forward_transformed(values(&x), &kernels, Some(values(&bias)), s);
    output_tensor(y, s)
}

/// The autodiff node: the input and weight are kept for the backward pass.
#[derive(Clone, Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = (NodeId, NodeId, ConvShape);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (saved, parents) = saved(ops, grads, checkpointer);
        let shape = saved.shape;
        let gradients = kernels::backward(
            values(&saved.x),
            values(&saved.weight),
            values(&saved.dy),
            &shape,
            saved.input_tracked,
        );
        let x_dims = saved.x.shape().to_vec();
        let weight_dims = saved.weight.shape().to_vec();
        register_weighted(
            grads,
            parents,
            [
                gradients.x.map(|dx| flex_tensor(dx, x_dims)),
                Some(flex_tensor(gradients.weight, weight_dims)),
                Some(flex_tensor(gradients.bias, [shape.channels_out])),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flex::Train;
    use crate::flex::kept_kernels::kept_kernels;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    /// The output and the gradients of `sum(conv(x) * g)` (input, when tracked; weight;
    /// bias), flattened, through the fast path or, when `stock`, Burn's `Conv2d::forward`.
    fn run(
        conv: &Conv2d<Train>,
        x: Tensor<Train, 4>,
        g: &Tensor<Train, 4>,
        stock: bool,
    ) -> Vec<(&'static str, Tensor<Flex, 1>)> {
        let y = match stock {
            true => conv.forward(x.clone()),
            false => conv2d(conv, x.clone()).unwrap_or_else(|_| panic!("fast path not taken")),
        };
        let grads = (y.clone() * g.clone()).sum().backward();
        let bias = conv.bias.as_ref().expect("a bias");
        let mut results = vec![("output", y.inner().flatten(0, 3))];
        results.extend(
            x.grad(&grads)
                .map(|dx| ("input gradient", dx.flatten(0, 3))),
        );
        results.push((
            "weight gradient",
            conv.weight.grad(&grads).unwrap().flatten(0, 3),
        ));
        results.push(("bias gradient", bias.grad(&grads).unwrap()));
        results
    }

    fn check(config: Conv2dConfig, input: [usize; 4], track_input: bool) {
        let device = Default::default();
        Train::seed(&device, 7);
        let conv: Conv2d<Train> = config.init(&device);
        let x = Tensor::<Train, 4>::random(input, Distribution::Normal(0.0, 1.0), &device);
        let x = if track_input { x.require_grad() } else { x };
        let out_dims = conv.forward(x.clone().detach()).dims();
        let g = Tensor::<Train, 4>::random(out_dims, Distribution::Normal(0.0, 1.0), &device);
        let fast = run(&conv, x.clone(), &g, false);
        let stock = run(&conv, x, &g, true);
        assert_eq!(fast.len(), 3 + usize::from(track_input));
        assert_eq!(stock.len(), fast.len());
        for ((name, f), (_, s)) in fast.into_iter().zip(stock) {
            // The Winograd transforms (3x3 and 5x5 layers) round differently: a few 1e-6 of
            // the largest value.
            let tolerance = 1e-5 * s.clone().abs().max().into_scalar().max(1.0);
            let diff = (f - s).abs().max().into_scalar();
            assert!(
                diff <= tolerance,
                "{name}: max difference {diff} > {tolerance}"
            );
        }
    }

    #[test]
    fn alexnet_shaped_layers_match_burns_convolution() {
        let conv = |c: [usize; 2], k: usize, s: usize, p: usize| {
            Conv2dConfig::new(c, [k, k])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        };
        check(conv([1, 8], 11, 4, 1), [3, 1, 67, 67], false);
        check(conv([6, 16], 5, 1, 2), [3, 6, 13, 13], true);
        check(conv([16, 12], 3, 1, 1), [2, 16, 5, 5], true);
        // 3x3 and 5x5 layers take the Winograd path: even maps, several images per GEMM group.
        check(conv([16, 24], 3, 1, 1), [6, 16, 12, 12], true);
        check(conv([16, 24], 5, 1, 2), [4, 16, 12, 12], true);
        // Small maps and six images or more take the direct convolution (on AVX-512 or AVX2 CPUs).
        check(conv([16, 24], 3, 1, 1), [7, 16, 4, 4], true);
        check(conv([8, 40], 5, 1, 2), [6, 8, 10, 10], true);
    }

    #[test]
    fn odd_shapes_match_burns_convolution() {
        // Non-square input and kernel, unequal strides, asymmetric padding, one image.
        let config = Conv2dConfig::new([3, 5], [3, 4])
            .with_stride([2, 1])
            .with_padding(PaddingConfig2d::Explicit(2, 0, 1, 3));
        check(config.clone(), [1, 3, 9, 7], true);
        check(config, [4, 3, 6, 11], true);
        // A padding wider than the kernel reach leaves whole output rows in the padding.
        let wide =
            Conv2dConfig::new([2, 3], [2, 2]).with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3));
        check(wide, [2, 2, 3, 3], true);
    }

    #[test]
    fn inference_backend_matches_burns_convolution() {
        let device = Default::default();
        let conv: Conv2d<Flex> = Conv2dConfig::new([4, 6], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let x = Tensor::<Flex, 4>::random([2, 4, 10, 10], Distribution::Normal(0.0, 1.0), &device);
        let fast = conv2d(&conv, x.clone()).unwrap_or_else(|_| panic!("fast path not taken"));
        let diff = (fast - conv.forward(x)).abs().max().into_scalar();
        assert!(diff < 1e-5, "max difference {diff}");
    }

    /// The largest difference between the fast path's inference and Burn's convolution.
    fn inference_difference(conv: &Conv2d<Flex>, x: &Tensor<Flex, 4>) -> f32 {
        let fast = conv2d(conv, x.clone()).unwrap_or_else(|_| panic!("fast path not taken"));
        (fast - conv.forward(x.clone())).abs().max().into_scalar()
    }

    #[test]
    fn inference_keeps_transformed_kernels_only_while_the_weight_lives() {
        let device = Default::default();
        let config =
            Conv2dConfig::new([8, 12], [5, 5]).with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2));
        let conv: Conv2d<Flex> = config.init(&device);
        let x = Tensor::<Flex, 4>::random([2, 8, 12, 12], Distribution::Normal(0.0, 1.0), &device);
        let shape = conv_shape(&conv, x.dims(), false).expect("a plain convolution");
        let weight = |conv: &Conv2d<Flex>| conv.weight.val().into_primitive().tensor();
        // Seen once: remembered; from the second pass on, the kernels are kept.
        for _ in 0..3 {
            assert!(inference_difference(&conv, &x) < 1e-4);
        }
        let first = weight(&conv);
        assert!(kept_kernels(&first, &shape).is_some(), "kernels not kept");
        // A layer of the same shape with other weights, alive at the same time, gets its own.
        let mut other = conv.clone();
        other.weight = other.weight.map(|w| w * 2.0 + 0.5);
        for _ in 0..3 {
            assert!(
                inference_difference(&other, &x) < 1e-4,
                "another layer's kernels"
            );
            assert!(
                inference_difference(&conv, &x) < 1e-4,
                "another layer's kernels"
            );
        }
        // Weights are no longer held once nothing else holds them.
        let freed = std::sync::Arc::downgrade(&first.data_arc());
        drop((first, conv));
        assert!(kept_kernels(&weight(&other), &shape).is_some());
        assert!(freed.upgrade().is_none(), "dropped weights still held");
    }

    #[test]
    fn unsupported_layers_are_handed_back() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::zeros([1, 4, 8, 8], &device);
        let grouped: Conv2d<Flex> = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(2)
            .init(&device);
        assert!(conv2d(&grouped, x.clone()).is_err());
        let dilated: Conv2d<Flex> = Conv2dConfig::new([4, 4], [3, 3])
            .with_dilation([2, 2])
            .init(&device);
        assert!(conv2d(&dilated, x.clone()).is_err());
        let same: Conv2d<Flex> = Conv2dConfig::new([4, 4], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init(&device);
        assert!(conv2d(&same, x).is_err());
        assert!(super::super::applies_to::<Train>() && super::super::applies_to::<Flex>());
    }
}
