//! Seeing through a generic backend. Rust has no specialisation, so the fast paths ([`crate::flex`],
//! [`crate::cudnn`]) check with `Any` that a model's backend `B` is one they serve and move its
//! tensors across; and they read a Burn convolution's sizes the same way.

use std::any::Any;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;

use crate::conv::ConvShape;

/// `value` as a `U` when `T` is `U`.
pub(crate) fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(same) => Ok(same.take().expect("filled above")),
        None => Err(slot.expect("left untouched")),
    }
}

/// `value` as a `U`, where the caller has established that `T` is `U`.
pub(crate) fn same<T: 'static, U: 'static>(value: T) -> U {
    cast(value).unwrap_or_else(|_| unreachable!("checked to be the same backend"))
}

/// A parameter of backend `B` as a primitive of backend `P`, where `B` is `P`.
pub(crate) fn param_as<B: Backend, P: Backend, const D: usize>(
    tensor: &Tensor<B, D>,
) -> FloatTensor<P> {
    same::<_, Tensor<P, D>>(tensor.clone())
        .into_primitive()
        .tensor()
}

/// The sizes of `conv` applied to an input of `dims`, for a plain convolution (one group, no
/// dilation, no `Same` padding); `None` otherwise. `symmetric` asks for equal padding on both
/// sides of each axis (cuDNN's convolutions take one padding per axis).
pub(crate) fn conv_shape<B: Backend>(
    conv: &Conv2d<B>,
    dims: [usize; 4],
    symmetric: bool,
) -> Option<ConvShape> {
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
    if symmetric && (top != bottom || left != right) {
        return None;
    }
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
