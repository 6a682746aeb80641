//! A faster CPU convolution for burn-flex, added through Burn's backend-extension mechanism.
//!
//! burn-flex 0.21 computes a convolution's gradients with Burn's generic fallbacks (a transposed
//! convolution for the input, a convolution of swapped tensors for the weights), which spend most
//! of a training step. Here the forward pass and both gradients are im2col + GEMM
//! ([`kernels`]); on `Autodiff<Flex>` the op is a custom autodiff node with its own backward, as
//! in Burn's "backend extension" guide.
//!
//! [`conv2d`] keeps [`crate::AlexNet`] generic over every backend: it takes this path when the
//! backend *is* `Flex` or `Autodiff<Flex>` (checked with `Any`, since Rust has no
//! specialisation) and the layer is a plain convolution (one group, no dilation, a bias, `f32`),
//! and hands the input back otherwise, for the stock `Conv2d::forward`.

mod kernels;

use std::any::Any;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorMetadata, TensorPrimitive};
use burn_flex::FlexTensor;

pub use kernels::ConvShape;

/// `conv(x)` through the im2col kernels when `B` is `Flex` or `Autodiff<Flex>` and the layer
/// is a plain convolution; `Err(x)` otherwise, for the caller's stock path.
pub(crate) fn conv2d<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let Some(shape) = conv_shape(conv, x.dims()).filter(|_| x.dtype() == DType::F32) else {
        return Err(x);
    };
    let Some(bias) = conv.bias.as_ref() else {
        return Err(x);
    };
    let (weight, bias) = (conv.weight.val(), bias.val());
    let x = match cast::<_, Tensor<Flex, 4>>(x) {
        Ok(x) => {
            let (weight, bias) = (same(primitive(weight)), same(primitive(bias)));
            let y = forward(x.into_primitive().tensor(), weight, Some(bias), &shape);
            return Ok(same(Tensor::<Flex, 4>::from_primitive(
                TensorPrimitive::Float(y),
            )));
        }
        Err(x) => x,
    };
    match cast::<_, Tensor<Autodiff<Flex>, 4>>(x) {
        Ok(x) => {
            let (weight, bias) = (same(primitive(weight)), same(primitive(bias)));
            let y = autodiff_forward(x.into_primitive().tensor(), weight, bias, shape);
            Ok(same(Tensor::<Autodiff<Flex>, 4>::from_primitive(
                TensorPrimitive::Float(y),
            )))
        }
        Err(x) => Err(x),
    }
}

/// `value` as a `U`, where the caller has established that `T` is `U`.
fn same<T: 'static, U: 'static>(value: T) -> U {
    cast(value).unwrap_or_else(|_| unreachable!("checked to be the same backend"))
}

/// Whether [`conv2d`] can take the fast path on backend `B`.
pub(crate) fn applies_to<B: Backend>() -> bool {
    use std::any::TypeId;
    [TypeId::of::<Flex>(), TypeId::of::<Autodiff<Flex>>()].contains(&TypeId::of::<B>())
}

/// `value` as a `U` when `T` is `U`.
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(same) => Ok(same.take().expect("filled above")),
        None => Err(slot.expect("left untouched")),
    }
}

fn primitive<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FloatTensor<B> {
    tensor.into_primitive().tensor()
}

/// The sizes of `conv` applied to an input of `dims`, when the kernels handle it.
fn conv_shape<B: Backend>(conv: &Conv2d<B>, dims: [usize; 4]) -> Option<ConvShape> {
    let [batch, channels_in, height, width] = dims;
    let [channels_out, weight_channels, kh, kw] = conv.weight.dims();
    if conv.groups != 1 || conv.dilation != [1, 1] || weight_channels != channels_in {
        return None;
    }
    let [[top, bottom], [left, right]] = match conv.padding {
        PaddingConfig2d::Valid => [[0, 0], [0, 0]],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [[top, bottom], [left, right]],
        PaddingConfig2d::Same => return None,
    };
    let out = |input: usize, kernel: usize, stride: usize, pad: usize| {
        (input + pad)
            .checked_sub(kernel)
            .map(|span| span / stride + 1)
    };
    Some(ConvShape {
        batch,
        channels_in,
        input: [height, width],
        channels_out,
        kernel: [kh, kw],
        stride: conv.stride,
        padding: [top, left],
        output: [
            out(height, kh, conv.stride[0], top + bottom)?,
            out(width, kw, conv.stride[1], left + right)?,
        ],
    })
}

/// The tensor's values, copied only when it is not contiguous.
fn contiguous(tensor: FlexTensor) -> FlexTensor {
    match tensor.as_slice::<f32>() {
        Some(_) => tensor,
        None => tensor.to_contiguous(),
    }
}

fn values(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().expect("a contiguous f32 tensor")
}

fn flex_tensor(values: Vec<f32>, dims: impl Into<Vec<usize>>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims.into()))
}

fn forward(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    s: &ConvShape,
) -> FlexTensor {
    let (x, weight, bias) = (contiguous(x), contiguous(weight), bias.map(contiguous));
    let y = kernels::forward(values(&x), values(&weight), bias.as_ref().map(values), s);
    flex_tensor(y, [s.batch, s.channels_out, s.output[0], s.output[1]])
}

/// The autodiff node: the input and weight are kept for the backward pass.
#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = (NodeId, NodeId, ConvShape);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x_state, weight_state, shape) = ops.state;
        let x = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(x_state));
        let weight = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(weight_state));
        let wanted = kernels::backward(
            values(&x),
            values(&weight),
            values(&dy),
            &shape,
            node_x.is_some(),
        );
        if let (Some(node), Some(dx)) = (node_x, wanted.x) {
            grads.register::<Flex>(node.id, flex_tensor(dx, x.shape().to_vec()));
        }
        if let Some(node) = node_weight {
            let dims = weight.shape().to_vec();
            grads.register::<Flex>(node.id, flex_tensor(wanted.weight, dims));
        }
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, flex_tensor(wanted.bias, [shape.channels_out]));
        }
    }
}

fn autodiff_forward(
    x: FloatTensor<Autodiff<Flex>>,
    weight: FloatTensor<Autodiff<Flex>>,
    bias: FloatTensor<Autodiff<Flex>>,
    shape: ConvShape,
) -> FloatTensor<Autodiff<Flex>> {
    let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
    match ConvBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let weight_state = prep.checkpoint(&weight);
            let y = forward(x.primitive, weight.primitive, Some(bias.primitive), &shape);
            prep.finish((x_state, weight_state, shape), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(
            x.primitive,
            weight.primitive,
            Some(bias.primitive),
            &shape,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    type Train = Autodiff<Flex>;

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
        assert!(applies_to::<Train>() && applies_to::<Flex>());
    }
}
