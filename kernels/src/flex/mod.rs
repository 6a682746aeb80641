//! The kernels as burn-flex ops, added through Burn's backend-extension mechanism: on `Flex`
//! each is a plain op, on `Autodiff<Flex>` a custom autodiff node with its own backward, as in
//! Burn's "backend extension" guide.
//!
//! The entry points keep a model generic over every backend: they take the fast path when the
//! backend *is* `Flex` or `Autodiff<Flex>` (checked with `Any`, since Rust has no
//! specialisation) and the layer is one the kernels handle, and hand the input back otherwise,
//! for Burn's stock layer.

mod conv;
mod pool;
mod relu;

use std::any::{Any, TypeId};

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

pub use conv::conv2d;
pub use pool::max_pool2d;
pub use relu::relu;

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

/// `value` as a `U` when `T` is `U`.
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(same) => Ok(same.take().expect("filled above")),
        None => Err(slot.expect("left untouched")),
    }
}

/// `value` as a `U`, where the caller has established that `T` is `U`.
fn same<T: 'static, U: 'static>(value: T) -> U {
    cast(value).unwrap_or_else(|_| unreachable!("checked to be the same backend"))
}

/// A parameter of backend `B` as a primitive of backend `P`, where `B` is `P`.
fn param_as<B: Backend, P: Backend, const D: usize>(tensor: &Tensor<B, D>) -> FloatTensor<P> {
    same::<_, Tensor<P, D>>(tensor.clone())
        .into_primitive()
        .tensor()
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
