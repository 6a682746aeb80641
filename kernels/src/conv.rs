//! A 2-D convolution on contiguous `f32` NCHW buffers, by the fastest algorithm for its shape:
//! Winograd's minimal filtering for the 3x3 and 5x5 layers (stride 1, same size), im2col + GEMM
//! for the others.

use crate::{im2col, winograd};

pub use im2col::{ConvShape, Gradients};

/// `y = x * weight + bias` for `x [B, C, H, W]` and `weight [O, C, KH, KW]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    match winograd::applies(shape) {
        true => winograd::forward(x, weight, bias, shape),
        false => im2col::forward(x, weight, bias, shape),
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
    if !winograd::applies(shape) {
        return im2col::backward(x, weight, dy, shape, input_grad);
    }
    let (weight_grad, bias) = winograd::weight_grad(x, dy, shape);
    Gradients {
        x: input_grad.then(|| winograd::input_grad(dy, weight, shape)),
        weight: weight_grad,
        bias,
    }
}
