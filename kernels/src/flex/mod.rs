//! The kernels as burn-flex ops, added through Burn's backend-extension mechanism: on `Flex`
//! each is a plain op, on `Autodiff<Flex>` a custom autodiff node with its own backward, as in
//! Burn's "backend extension" guide.
//!
//! The entry points keep a model generic over every backend: they take the fast path when the
//! backend *is* `Flex` or `Autodiff<Flex>` (checked with `Any`, since Rust has no
//! specialisation) and the layer is one the kernels handle, and hand the input back otherwise,
//! for Burn's stock layer.

mod conv;
mod kept_kernels;
mod linear;
mod pool;
mod relu;
mod sgd;

use std::any::TypeId;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

use crate::any_backend::{cast, param_as, same};

pub use conv::conv2d;
pub use linear::linear;
pub use pool::max_pool2d;
pub use relu::relu;
pub use sgd::sgd_step;

/// The training backend the fast path serves.
type Train = Autodiff<Flex>;

/// Whether the fast path can run on backend `B`.
pub fn applies_to<B: Backend>() -> bool {
    [TypeId::of::<Flex>(), TypeId::of::<Train>()].contains(&TypeId::of::<B>())
}

/// An op with a kernel for `Flex` and an autodiff node for `Autodiff<Flex>`.
trait FlexOp {
    /// The op on plain tensors.
    fn inference(&self, x: FlexTensor) -> FlexTensor;
    /// The op as a node of the autodiff graph.
    fn training(&self, x: FloatTensor<Train>) -> FloatTensor<Train>;
}

/// `forward(x)` as a one-input node of the autodiff graph; the second result of `forward` is
/// the state `node`'s backward pass receives.
fn unary_node<N: Backward<Flex, 1>>(
    node: N,
    x: FloatTensor<Train>,
    forward: impl FnOnce(FlexTensor) -> (FlexTensor, N::State),
) -> FloatTensor<Train> {
    match node
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (y, state) = forward(x.primitive);
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive).0),
    }
}

/// A layer's forward pass on flex tensors: input, weight, bias, then the layer's sizes.
type WeightedForward<S> = fn(FlexTensor, FlexTensor, FlexTensor, &S) -> FlexTensor;

/// A layer with a weight and a bias (a convolution, a linear layer) as a [`FlexOp`]:
/// `inference` on plain tensors, and `forward` as a [`weighted_node`] whose backward pass is
/// `node`'s. `inference` may count on the weight staying the same from call to call.
struct WeightedOp<B: Backend, const D: usize, S, N> {
    weight: Tensor<B, D>,
    bias: Tensor<B, 1>,
    shape: S,
    node: N,
    forward: WeightedForward<S>,
    inference: WeightedForward<S>,
}

impl<B, const D: usize, S, N> FlexOp for WeightedOp<B, D, S, N>
where
    B: Backend,
    N: Backward<Flex, 3, State = (NodeId, NodeId, S)> + Clone,
    S: Clone + Send + std::fmt::Debug + 'static,
{
    fn inference(&self, x: FlexTensor) -> FlexTensor {
        let weight = param_as::<B, Flex, D>(&self.weight);
        let bias = param_as::<B, Flex, 1>(&self.bias);
        (self.inference)(x, weight, bias, &self.shape)
    }

    fn training(&self, x: FloatTensor<Train>) -> FloatTensor<Train> {
        let weight = param_as::<B, Train, D>(&self.weight);
        let bias = param_as::<B, Train, 1>(&self.bias);
        let node = self.node.clone();
        weighted_node(node, x, [weight, bias], self.shape.clone(), self.forward)
    }
}

/// `forward(x, weight, bias, shape)` as a three-input node of the autodiff graph; the input and
/// the weight are kept, with `shape`, for `node`'s backward pass ([`saved`]).
fn weighted_node<N, S>(
    node: N,
    x: FloatTensor<Train>,
    [weight, bias]: [FloatTensor<Train>; 2],
    shape: S,
    forward: WeightedForward<S>,
) -> FloatTensor<Train>
where
    N: Backward<Flex, 3, State = (NodeId, NodeId, S)>,
    S: Clone + Send + std::fmt::Debug + 'static,
{
    let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
    match node
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let weight_state = prep.checkpoint(&weight);
            let y = forward(x.primitive, weight.primitive, bias.primitive, &shape);
            prep.finish((x_state, weight_state, shape), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(
            x.primitive,
            weight.primitive,
            bias.primitive,
            &shape,
        )),
    }
}

/// What the backward pass of a [`weighted_node`] works from, each tensor contiguous.
struct Saved<S> {
    /// The output gradient.
    dy: FlexTensor,
    x: FlexTensor,
    weight: FlexTensor,
    shape: S,
    /// Whether the input's gradient is wanted.
    input_tracked: bool,
}

/// The output gradient and the kept input and weight of a [`weighted_node`]; the parents to
/// hand [`register_weighted`].
fn saved<S>(
    ops: Ops<(NodeId, NodeId, S), 3>,
    grads: &mut Gradients,
    checkpointer: &mut Checkpointer,
) -> (Saved<S>, [Option<NodeId>; 3]) {
    let parents = ops.parents.map(|parent| parent.map(|node| node.id));
    let (x_state, weight_state, shape) = ops.state;
    let saved = Saved {
        dy: contiguous(grads.consume::<Flex>(&ops.node)),
        x: contiguous(checkpointer.retrieve_node_output::<FlexTensor>(x_state)),
        weight: contiguous(checkpointer.retrieve_node_output::<FlexTensor>(weight_state)),
        shape,
        input_tracked: parents[0].is_some(),
    };
    (saved, parents)
}

/// Registers a weighted layer's gradients (input, weight, bias) with the parents that want
/// them.
fn register_weighted(
    grads: &mut Gradients,
    parents: [Option<NodeId>; 3],
    gradients: [Option<FlexTensor>; 3],
) {
    for (parent, gradient) in parents.into_iter().zip(gradients) {
        if let (Some(id), Some(gradient)) = (parent, gradient) {
            grads.register::<Flex>(id, gradient);
        }
    }
}

/// `op(x)` when `B` is one of the flex backends and `x` holds `f32`; `Err(x)` otherwise.
fn apply<B: Backend, const D: usize, const E: usize>(
    op: &impl FlexOp,
    x: Tensor<B, D>,
) -> Result<Tensor<B, E>, Tensor<B, D>> {
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    let x = match cast::<_, Tensor<Flex, D>>(x) {
        Ok(x) => {
            let y = op.inference(x.into_primitive().tensor());
            return Ok(same(Tensor::<Flex, E>::from_primitive(
                TensorPrimitive::Float(y),
            )));
        }
        Err(x) => x,
    };
    match cast::<_, Tensor<Train, D>>(x) {
        Ok(x) => {
            let y = op.training(x.into_primitive().tensor());
            Ok(same(Tensor::<Train, E>::from_primitive(
                TensorPrimitive::Float(y),
            )))
        }
        Err(x) => Err(x),
    }
}

/// The tensor, copied only when it is not contiguous.
fn contiguous(tensor: FlexTensor) -> FlexTensor {
    match tensor.as_slice::<f32>() {
        Some(_) => tensor,
        None => tensor.to_contiguous(),
    }
}

/// The values of a tensor that went through [`contiguous`].
fn values(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// The tensor's values for writing, when nothing else holds them.
fn unique_values_mut(tensor: &mut FlexTensor) -> Option<&mut [f32]> {
    let (start, end) = tensor.layout().contiguous_offsets()?;
    tensor
        .try_storage_mut::<f32>()
        .map(|values| &mut values[start..end])
}

fn flex_tensor(values: Vec<f32>, dims: impl Into<Vec<usize>>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims.into()))
}
