//! Fast CPU kernels for the layers of AlexNet: convolution (im2col + GEMM, Winograd's minimal
//! filtering for the 3x3 and 5x5 layers on large maps, direct convolution on small ones and
//! for the strided first layer's forward pass), the linear layer (a GEMM tuned for a batch's
//! few rows), max-pooling with its argmax, and ReLU.
//!
//! The core modules work on contiguous `f32` NCHW slices and know nothing of Burn, so each
//! kernel is tested and timed on its own (`cargo bench -p alexnet-kernels`). The `flex` feature
//! adds [`flex`], the glue that runs them as ops of burn-flex and as custom autodiff nodes of
//! `Autodiff<Flex>`: Burn 0.21's flex backend computes a convolution's gradients with generic
//! fallbacks and ReLU and max-pooling with several generic ops each, which spent most of a
//! training step, and its linear layers' products ran at 60% of PyTorch's speed at batch 32.

#[cfg(target_arch = "x86_64")]
mod broadcast_gemm;
pub mod conv;
mod cpu;
pub mod direct;
pub mod im2col;
pub mod linear;
pub mod pool;
pub mod relu;
pub mod scratch;
pub mod sgd;
#[cfg(target_arch = "x86_64")]
mod shallow_gemm;
mod shared_output;
pub mod small_gemm;
#[cfg(target_arch = "x86_64")]
mod stream_gemm;
pub mod winograd;

#[cfg(any(feature = "flex", feature = "cudnn"))]
mod any_backend;
#[cfg(feature = "cudnn")]
pub mod cudnn;
#[cfg(feature = "flex")]
pub mod flex;

/// Deterministic values in [-1, 1), for the kernels' tests.
#[cfg(test)]
fn noise(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A convolution's shape from its sizes (the output's follows), for the kernels' tests.
#[cfg(test)]
fn conv_shape(
    batch: usize,
    [channels_in, channels_out]: [usize; 2],
    input: [usize; 2],
    kernel: [usize; 2],
    padding: [usize; 2],
    stride: [usize; 2],
) -> conv::ConvShape {
    conv::ConvShape {
        batch,
        channels_in,
        input,
        channels_out,
        kernel,
        stride,
        padding,
        output: [0, 1].map(|a| (input[a] + 2 * padding[a] - kernel[a]) / stride[a] + 1),
    }
}

/// The largest difference between two equally long slices, for the kernels' tests.
#[cfg(test)]
fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}
