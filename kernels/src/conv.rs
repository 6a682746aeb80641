//! A 2-D convolution on contiguous `f32` NCHW buffers, by the fastest algorithm for its shape:
//! Winograd's minimal filtering for the 3x3 and 5x5 layers on large maps (stride 1, same
//! size; in inference at every batch size once their transformed kernels are kept, see
//! [`crate::winograd::applies_with_kernels_kept`]), direct convolution (with AVX-512 or AVX2)
//! for the other stride-1 layers and for the forward pass of the strided first layer, im2col +
//! GEMM for the rest and for the first layer's weight gradient on large maps.

use crate::{direct, im2col, winograd};

pub use im2col::{ConvShape, Gradients};

/// The algorithm that computes a convolution of this shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Winograd,
    Direct,
    /// The direct convolution forward (a first layer: stride above 1, up to three input
    /// channels), im2col + GEMM or the strided weight gradient backward.
    Strided,
    Im2col,
}

impl Algorithm {
    pub fn of(shape: &ConvShape) -> Self {
        if winograd::applies(shape) {
            Self::Winograd
        } else if direct::applies(shape) {
            Self::Direct
        } else if direct::takes_strided_forward(shape) {
            Self::Strided
        } else {
            Self::Im2col
        }
    }
}

/// `(x, dy, shape)` to the weight and bias gradients.
type WeightGrad = fn(&[f32], &[f32], &ConvShape) -> (Vec<f32>, Vec<f32>);
/// `(dy, weight, shape)` to the input gradient.
type InputGrad = fn(&[f32], &[f32], &ConvShape) -> Vec<f32>;

/// `y = x * weight + bias` for `x [B, C, H, W]` and `weight [O, C, KH, KW]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    match Algorithm::of(shape) {
        Algorithm::Winograd => winograd::forward(x, weight, bias, shape),
        Algorithm::Direct => direct::forward(x, weight, bias, shape),
        Algorithm::Strided => direct::strided_forward(x, weight, bias, shape),
        Algorithm::Im2col => im2col::forward(x, weight, bias, shape),
    }
}

/// The weight and bias gradients for the output gradient `dy`, and the input gradient when
/// `input_grad` is set.
pub fn backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    shape: &ConvShape,
    input_grad: bool,
) -> Gradients {
    // Winograd and the direct convolution compute the two gradients separately.
    let (weight_grad, input_grad_of): (WeightGrad, InputGrad) = match Algorithm::of(shape) {
        Algorithm::Winograd => (winograd::weight_grad, winograd::input_grad),
        Algorithm::Direct => (direct::weight_grad, direct::input_grad),
        // The first layer needs no input gradient; its weight gradient skips im2col's copies.
        Algorithm::Strided | Algorithm::Im2col
            if !input_grad && direct::takes_strided_weight_grad(shape) =>
        {
            let (weight, bias) = direct::strided_weight_grad(x, dy, shape);
            return Gradients {
                x: None,
                weight,
                bias,
            };
        }
        Algorithm::Strided | Algorithm::Im2col => {
            return im2col::backward(x, weight, dy, shape, input_grad);
        }
    };
    let (weight_grad, bias) = weight_grad(x, dy, shape);
    Gradients {
        x: input_grad.then(|| input_grad_of(dy, weight, shape)),
        weight: weight_grad,
        bias,
    }
}
