//! Max-pooling over [`crate::pool`] as one autodiff node, its argmax kept for the backward pass.

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

use super::{FlexOp, Train, apply, contiguous, flex_tensor, unary_node, values};
use crate::pool::{self, PoolShape};

/// `pool(x)` through the fast kernels when `B` is a flex backend and the pooling has no padding,
/// dilation or ceil mode; `Err(x)` otherwise.
pub fn max_pool2d<B: Backend>(
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
    let kernel = PoolShape::new(
        batch * channels,
        [height, width],
        pool.kernel_size,
        pool.stride,
    );
    let Some(kernel) = kernel.filter(|_| plain) else {
        return Err(x);
    };
    let op = PoolOp {
        kernel,
        dims: [batch, channels],
    };
    apply(&op, x)
}

/// The kernel's shape plus the batch and channel split of its planes, for the output tensor.
#[derive(Debug, Clone, Copy)]
struct PoolOp {
    kernel: PoolShape,
    /// Batch and channels.
    dims: [usize; 2],
}

impl PoolOp {
    fn output_dims(&self) -> [usize; 4] {
        let [h, w] = self.kernel.output;
        [self.dims[0], self.dims[1], h, w]
    }

    fn input_dims(&self) -> [usize; 4] {
        let [h, w] = self.kernel.input;
        [self.dims[0], self.dims[1], h, w]
    }

    /// The maxima, and where in its input plane each one was.
    fn forward(&self, x: FlexTensor) -> (FlexTensor, Vec<u32>) {
        let x = contiguous(x);
        let (y, argmax) = pool::forward(values(&x), &self.kernel);
        (flex_tensor(y, self.output_dims()), argmax)
    }
}

impl FlexOp for PoolOp {
    fn inference(&self, x: FlexTensor) -> FlexTensor {
        let x = contiguous(x);
        let y = pool::forward_values(values(&x), &self.kernel);
        flex_tensor(y, self.output_dims())
    }

    fn training(&self, x: FloatTensor<Train>) -> FloatTensor<Train> {
        unary_node(PoolBackward, x, |x| {
            let (y, argmax) = self.forward(x);
            (y, (argmax, *self))
        })
    }
}

/// The autodiff node; each output's gradient goes to its window's maximum.
#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = (Vec<u32>, PoolOp);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [Some(parent)] = ops.parents else {
            return;
        };
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (argmax, op) = ops.state;
        let dx = pool::backward(values(&dy), &argmax, &op.kernel);
        grads.register::<Flex>(parent.id, flex_tensor(dx, op.input_dims()));
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
