//! Plain SGD's update on flex tensors through [`crate::sgd`].

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorMetadata, TensorPrimitive};

use super::{contiguous, flex_tensor, unique_values_mut, values};
use crate::any_backend::{cast, same};
use crate::sgd::step_into_grad;

/// `weight - lr * grad` in one pass when `B` is `Flex` and both hold `f32`, written into the
/// gradient's buffer when nothing else holds it; both handed back otherwise, for Burn's SGD.
#[allow(clippy::type_complexity)]
pub fn sgd_step<B: Backend, const D: usize>(
    weight: Tensor<B, D>,
    grad: Tensor<B, D>,
    lr: f64,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
    if weight.dtype() != DType::F32 || grad.dtype() != DType::F32 {
        return Err((weight, grad));
    }
    let (weight, grad) = match (
        cast::<_, Tensor<Flex, D>>(weight),
        cast::<_, Tensor<Flex, D>>(grad),
    ) {
        (Ok(weight), Ok(grad)) => (weight, grad),
        (weight, grad) => {
            let back = |t: Result<Tensor<Flex, D>, Tensor<B, D>>| t.map_or_else(|t| t, same);
            return Err((back(weight), back(grad)));
        }
    };
    let weight = contiguous(weight.into_primitive().tensor());
    let mut grad = grad.into_primitive().tensor();
    let lr = lr as f32;
    let stepped = match unique_values_mut(&mut grad) {
        Some(values_mut) => {
            step_into_grad(values(&weight), values_mut, lr);
            grad
        }
        None => {
            let mut stepped = values(&contiguous(grad)).to_vec();
            step_into_grad(values(&weight), &mut stepped, lr);
            flex_tensor(stepped, weight.shape().to_vec())
        }
    };
    Ok(same(Tensor::<Flex, D>::from_primitive(
        TensorPrimitive::Float(stepped),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::tensor::Distribution;

    #[test]
    fn the_update_equals_burns_bit_for_bit_and_other_backends_are_handed_back() {
        let device = Default::default();
        let weight = Tensor::<Flex, 2>::random([300, 500], Distribution::Normal(0.0, 1.0), &device);
        let grad = Tensor::<Flex, 2>::random([300, 500], Distribution::Normal(0.0, 1.0), &device);
        let burns = weight.clone() - grad.clone().mul_scalar(0.01);
        // A shared gradient (a new buffer) and a unique one (written in place).
        let shared = sgd_step(weight.clone(), grad.clone(), 0.01).unwrap_or_else(|_| panic!());
        let unique = sgd_step(weight.clone(), grad, 0.01).unwrap_or_else(|_| panic!());
        for ours in [shared, unique] {
            let (ours, theirs) = (ours.into_data(), burns.clone().into_data());
            assert_eq!(
                ours.as_slice::<f32>().unwrap(),
                theirs.as_slice::<f32>().unwrap()
            );
        }
        let w = Tensor::<Autodiff<Flex>, 1>::zeros([4], &device);
        assert!(sgd_step(w.clone(), w, 0.1).is_err());
    }
}
