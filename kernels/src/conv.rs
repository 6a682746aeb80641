//! A 2-D convolution on contiguous `f32` NCHW buffers, by the fastest algorithm for its shape:
//! Winograd's minimal filtering for the 3x3 and 5x5 layers on large maps (stride 1, same
//! size), direct convolution for the other stride-1 layers (with AVX-512), im2col + GEMM for
//! the rest.

use crate::{direct, im2col, winograd};

pub use im2col::{ConvShape, Gradients};

/// The algorithm that computes a convolution of this shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Winograd,
    Direct,
    Im2col,
}

impl Algorithm {
    pub fn of(shape: &ConvShape) -> Self {
        if winograd::applies(shape) {
            Self::Winograd
        } else if direct::applies(shape) {
            Self::Direct
        } else {
            Self::Im2col
        }
    }
}

/// `y = x * weight + bias` for `x [B, C, H, W]` and `weight [O, C, KH, KW]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    match Algorithm::of(shape) {
        Algorithm::Winograd => winograd::forward(x, weight, bias, shape),
        Algorithm::Direct => direct::forward(x, weight, bias, shape),
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
    match Algorithm::of(shape) {
        Algorithm::Winograd => {
            let (weight_grad, bias) = winograd::weight_grad(x, dy, shape);
            Gradients {
                x: input_grad.then(|| winograd::input_grad(dy, weight, shape)),
                weight: weight_grad,
                bias,
            }
        }
        Algorithm::Direct => {
            let (weight_grad, bias) = direct::weight_grad(x, dy, shape);
            Gradients {
                x: input_grad.then(|| direct::input_grad(dy, weight, shape)),
                weight: weight_grad,
                bias,
            }
        }
        Algorithm::Im2col => im2col::backward(x, weight, dy, shape, input_grad),
    }
}
