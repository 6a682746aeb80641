//! Max-pooling with the argmax kept for the backward pass; NaN wins a window, as in PyTorch.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{FlexOp, Train, apply, contiguous, flex_tensor, unary_node, values};

/// `pool(x)` through the fast kernels when `B` is a flex backend and the pooling has no padding,
/// dilation or ceil mode; `Err(x)` otherwise.
pub(crate) fn max_pool2d<B: Backend>(
    pool: &MaxPool2d,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let plain = pool.dilation == [1, 1]
        && !pool.ceil_mode
        && matches!(
            pool.padding,
            PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
        );
    let [batch, channels, height, width] = x.dims();
    let [kh, kw] = pool.kernel_size;
    let out = |input: usize, kernel: usize, stride: usize| {
        input.checked_sub(kernel).map(|span| span / stride + 1)
    };
    let (Some(out_h), Some(out_w)) = (
        out(height, kh, pool.stride[0]),
        out(width, kw, pool.stride[1]),
    ) else {
        return Err(x);
    };
    if !plain {
        return Err(x);
    }
    let shape = PoolShape {
        planes: batch * channels,
        dims: [batch, channels],
        input: [height, width],
        kernel: pool.kernel_size,
        stride: pool.stride,
        output: [out_h, out_w],
    };
    apply(&shape, x)
}

/// The sizes of one max-pooling.
#[derive(Debug, Clone, Copy)]
struct PoolShape {
    /// Batch times channels.
    planes: usize,
    /// Batch and channels.
    dims: [usize; 2],
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    output: [usize; 2],
}

impl PoolShape {
    fn input_plane(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn output_plane(&self) -> usize {
        self.output[0] * self.output[1]
    }

    fn output_dims(&self) -> [usize; 4] {
        [self.dims[0], self.dims[1], self.output[0], self.output[1]]
    }

    fn input_dims(&self) -> [usize; 4] {
        [self.dims[0], self.dims[1], self.input[0], self.input[1]]
    }
}

/// The maxima, and where in its input plane each one was.
fn forward(x: FlexTensor, s: &PoolShape) -> (FlexTensor, Vec<u32>) {
    let x = contiguous(x);
    let mut y = vec![0.0; s.planes * s.output_plane()];
    let mut argmax = vec![0u32; y.len()];
    y.par_chunks_mut(s.output_plane())
        .zip(argmax.par_chunks_mut(s.output_plane()))
        .zip(values(&x).par_chunks(s.input_plane()))
        .for_each(|((y, argmax), plane)| pool_plane(plane, s, y, argmax));
    (flex_tensor(y, s.output_dims()), argmax)
}

/// Whether `candidate` replaces `best` as a window's maximum: larger, or the first NaN. Ties
/// keep the first in row-major order, as Burn's and PyTorch's pooling do.
fn beats(candidate: f32, best: f32) -> bool {
    candidate > best || (candidate.is_nan() && !best.is_nan())
}

fn pool_plane(plane: &[f32], s: &PoolShape, y: &mut [f32], argmax: &mut [u32]) {
    let [out_h, out_w] = s.output;
    let width = s.input[1];
    for oy in 0..out_h {
        for ox in 0..out_w {
            let (top, left) = (oy * s.stride[0], ox * s.stride[1]);
            let mut best = (f32::NEG_INFINITY, top * width + left);
            for row in top..top + s.kernel[0] {
                let start = row * width + left;
                for (offset, &value) in plane[start..start + s.kernel[1]].iter().enumerate() {
                    if beats(value, best.0) {
                        best = (value, start + offset);
                    }
                }
            }
            y[oy * out_w + ox] = best.0;
            argmax[oy * out_w + ox] = best.1 as u32;
        }
    }
}

impl FlexOp for PoolShape {
    fn inference(&self, x: FlexTensor) -> FlexTensor {
        forward(x, self).0
    }

    fn training(&self, x: FloatTensor<Train>) -> FloatTensor<Train> {
        unary_node(PoolBackward, x, |x| {
            let (y, argmax) = forward(x, self);
            (y, (argmax, *self))
        })
    }
}

/// The autodiff node; each output's gradient goes to its window's maximum.
#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = (Vec<u32>, PoolShape);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [Some(parent)] = ops.parents else {
            return;
        };
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (argmax, s) = ops.state;
        let mut dx = vec![0.0; s.planes * s.input_plane()];
        dx.par_chunks_mut(s.input_plane())
            .zip(values(&dy).par_chunks(s.output_plane()))
            .zip(argmax.par_chunks(s.output_plane()))
            .for_each(|((dx, dy), argmax)| {
                for (dy, at) in dy.iter().zip(argmax) {
                    dx[*at as usize] += dy;
                }
            });
        grads.register::<Flex>(parent.id, flex_tensor(dx, s.input_dims()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Distribution, TensorData};

    fn check(pool: MaxPool2d, dims: [usize; 4]) {
        let device = Default::default();
        let x = Tensor::<Train, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let out = pool.forward(x.clone().detach()).dims();
        let g = Tensor::<Train, 4>::random(out, Distribution::Normal(0.0, 1.0), &device);
        let run = |fast: bool| {
            let y = match fast {
                true => max_pool2d(&pool, x.clone()).unwrap_or_else(|_| panic!("not taken")),
                false => pool.forward(x.clone()),
            };
            let grads = (y.clone() * g.clone()).sum().backward();
            (y.inner(), x.grad(&grads).expect("input gradient"))
        };
        let ((y, dx), (y_stock, dx_stock)) = (run(true), run(false));
        y.into_data().assert_eq(&y_stock.into_data(), true);
        dx.into_data()
            .assert_approx_eq::<f32>(&dx_stock.into_data(), Default::default());
    }

    #[test]
    fn matches_burns_max_pool_forward_and_backward() {
        // AlexNet's 3x3 windows with stride 2 overlap, so gradients add up.
        let alexnet = MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init();
        check(alexnet, [2, 5, 13, 13]);
        check(
            MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init(),
            [1, 2, 12, 9],
        );
        check(
            MaxPool2dConfig::new([2, 3]).with_strides([1, 3]).init(),
            [2, 3, 7, 10],
        );
    }

    #[test]
    fn nan_wins_its_window_and_padded_pools_are_handed_back() {
        let device = Default::default();
        let mut values = vec![0.0f32; 9];
        values[4] = f32::NAN;
        let x = Tensor::<Flex, 4>::from_data(TensorData::new(values, [1, 1, 3, 3]), &device);
        let pool = MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init();
        let y: Vec<f32> = max_pool2d(&pool, x.clone())
            .unwrap_or_else(|_| panic!())
            .into_data()
            .to_vec()
            .unwrap();
        assert!(y[0].is_nan());
        let padded = MaxPool2dConfig::new([3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        assert!(max_pool2d(&padded, x).is_err());
    }
}
