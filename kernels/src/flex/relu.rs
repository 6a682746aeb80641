//! ReLU over [`crate::relu`] as one autodiff node, in place where nothing else holds the tensor.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorMetadata};
use burn_flex::FlexTensor;

use super::{FlexOp, Train, apply, contiguous, flex_tensor, unary_node, unique_values_mut, values};
use crate::relu as kernels;

/// `max(x, 0)` through the fast kernels when `B` is a flex backend; `Err(x)` otherwise.
pub fn relu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Result<Tensor<B, D>, Tensor<B, D>> {
    apply(&Relu, x)
}

struct Relu;

/// `max(x, 0)`, in place when nothing else holds `x` (the usual case: a layer's fresh output).
fn forward(x: FlexTensor) -> FlexTensor {
    let mut x = contiguous(x);
    if let Some(values) = unique_values_mut(&mut x) {
        kernels::forward_in_place(values);
        return x;
    }
    flex_tensor(kernels::forward(values(&x)), x.shape().to_vec())
}

/// `dy` where `y > 0` (or NaN), else 0; in place when nothing else holds `dy`.
fn backward(dy: FlexTensor, y: &FlexTensor) -> FlexTensor {
    let mut dy = contiguous(dy);
    if let Some(grad) = unique_values_mut(&mut dy) {
        kernels::backward_in_place(grad, values(y));
        return dy;
    }
    flex_tensor(
        kernels::backward(values(&dy), values(y)),
        dy.shape().to_vec(),
    )
}

impl FlexOp for Relu {
    fn inference(&self, x: FlexTensor) -> FlexTensor {
        forward(x)
    }

    fn training(&self, x: FloatTensor<Train>) -> FloatTensor<Train> {
        unary_node(ReluBackward, x, |x| {
            let y = forward(x);
            (y.clone(), y)
        })
    }
}

/// The autodiff node; its state is the output, whose sign gates the gradient.
#[derive(Debug)]
struct ReluBackward;

impl Backward<Flex, 1> for ReluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [Some(parent)] = ops.parents else {
            return;
        };
        let dx = backward(grads.consume::<Flex>(&ops.node), &ops.state);
        grads.register::<Flex>(parent.id, dx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn matches_burns_relu_forward_and_backward() {
        let device = Default::default();
        let x = Tensor::<Train, 3>::random([3, 70, 1000], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let g = Tensor::<Train, 3>::random([3, 70, 1000], Distribution::Normal(0.0, 1.0), &device);
        // `x * 2` is held by nothing else, so the fast path works in place on it; `x` itself is
        // shared with the test, so that path allocates.
        let run = |fast: bool, in_place: bool| {
            let input = if in_place { x.clone() * 2.0 } else { x.clone() };
            let y = match fast {
                true => relu(input).unwrap_or_else(|_| panic!("fast path not taken")),
                false => burn::tensor::activation::relu(input),
            };
            let grads = (y.clone() * g.clone()).sum().backward();
            (y.inner(), x.grad(&grads).expect("input gradient"))
        };
        for in_place in [false, true] {
            let ((y, dx), (y_stock, dx_stock)) = (run(true, in_place), run(false, in_place));
            y.into_data().assert_eq(&y_stock.into_data(), true);
            dx.into_data().assert_eq(&dx_stock.into_data(), true);
        }
    }

    #[test]
    fn nan_passes_through() {
        let device = Default::default();
        let x = Tensor::<Flex, 1>::from_floats([f32::NAN, -1.0, 2.0], &device);
        let y: Vec<f32> = relu(x)
            .unwrap_or_else(|_| panic!())
            .into_data()
            .to_vec()
            .unwrap();
        assert!(y[0].is_nan());
        assert_eq!(&y[1..], &[0.0, 2.0]);
    }
}
