//! Convolution as im2col + GEMM on contiguous `f32` NCHW buffers, one image per rayon task.
//!
//! Per image, with `K = channels_in * kh * kw` and `N = out_h * out_w`:
//! - forward: `y[Cout, N] = W[Cout, K] · col[K, N] + b`
//! - weight gradient: `dW[Cout, K] += dy[Cout, N] · col[K, N]ᵀ`
//! - input gradient: `dcol[K, N] = W[Cout, K]ᵀ · dy[Cout, N]`, scattered back by col2im.
//!
//! The GEMMs run on the `gemm` crate (the one burn-flex uses); whole images go to the threads,
//! so each GEMM is large and single-threaded, and no buffer is shared between threads.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// The sizes of one 2-D convolution (one group, no dilation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub channels_in: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Output channels.
    pub channels_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Zero padding before the first row and column.
    pub padding: [usize; 2],
    /// Output height and width.
    pub output: [usize; 2],
}

impl ConvShape {
    /// Rows of the column matrix: one per (input channel, kernel row, kernel column).
    fn col_rows(&self) -> usize {
        self.channels_in * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the column matrix: one per output pixel.
    fn col_cols(&self) -> usize {
        self.output[0] * self.output[1]
    }

    fn input_len(&self) -> usize {
        self.channels_in * self.input[0] * self.input[1]
    }

    fn output_len(&self) -> usize {
        self.channels_out * self.col_cols()
    }

    /// Elements of the weight tensor `[Cout, Cin, kh, kw]`.
    pub fn weight_len(&self) -> usize {
        self.channels_out * self.col_rows()
    }
}

/// The output positions `lo..hi` along one axis whose input position
/// `out * stride + offset - padding` falls inside `0..input`.
fn valid_range(
    output: usize,
    input: usize,
    offset: usize,
    padding: usize,
    stride: usize,
) -> (usize, usize) {
    let lo = padding.saturating_sub(offset).div_ceil(stride).min(output);
    let hi = (input + padding)
        .checked_sub(offset)
        .map_or(0, |end| end.div_ceil(stride))
        .clamp(lo, output);
    (lo, hi)
}

/// Visits every (column-matrix row, output row) pair with the input row it reads (`None` when
/// it lies in the padding), and the valid output columns with their first input column.
fn for_each_patch_row(
    shape: &ConvShape,
    mut visit: impl FnMut(usize, usize, Option<usize>, (usize, usize), usize),
) {
    let [in_h, in_w] = shape.input;
    let [out_h, out_w] = shape.output;
    let [kh, kw] = shape.kernel;
    let [sh, sw] = shape.stride;
    let [ph, pw] = shape.padding;
    for channel in 0..shape.channels_in {
        for ki in 0..kh {
            let (row_lo, row_hi) = valid_range(out_h, in_h, ki, ph, sh);
            for kj in 0..kw {
                let col_row = (channel * kh + ki) * kw + kj;
                let (lo, hi) = valid_range(out_w, in_w, kj, pw, sw);
                let first_ix = (lo * sw + kj).saturating_sub(pw);
                for oy in 0..out_h {
                    let input_row = ((row_lo..row_hi).contains(&oy) && lo < hi)
                        .then(|| (channel * in_h + oy * sh + ki - ph) * in_w);
                    visit(col_row, oy, input_row, (lo, hi), first_ix);
                }
            }
        }
    }
}

/// Unfolds one image `[Cin, H, W]` into `col[K, N]`.
fn im2col(image: &[f32], shape: &ConvShape, col: &mut [f32]) {
    let out_w = shape.output[1];
    let n = shape.col_cols();
    let sw = shape.stride[1];
    for_each_patch_row(shape, |col_row, oy, input_row, (lo, hi), first_ix| {
        let dst = &mut col[col_row * n + oy * out_w..][..out_w];
        let Some(start) = input_row else {
            dst.fill(0.0);
            return;
        };
        dst[..lo].fill(0.0);
        dst[hi..].fill(0.0);
        let src = &image[start + first_ix..];
        if sw == 1 {
            dst[lo..hi].copy_from_slice(&src[..hi - lo]);
        } else {
            for (d, s) in dst[lo..hi].iter_mut().zip(src.iter().step_by(sw)) {
                *d = *s;
            }
        }
    });
}

/// Adds `col[K, N]` back onto one image gradient `[Cin, H, W]` (the adjoint of [`im2col`]).
fn col2im_add(col: &[f32], shape: &ConvShape, image: &mut [f32]) {
    let out_w = shape.output[1];
    let n = shape.col_cols();
    let sw = shape.stride[1];
    for_each_patch_row(shape, |col_row, oy, input_row, (lo, hi), first_ix| {
        let Some(start) = input_row else { return };
        let src = &col[col_row * n + oy * out_w..][lo..hi];
        let dst = &mut image[start + first_ix..];
        for (s, d) in src.iter().zip(dst.iter_mut().step_by(sw)) {
            *d += *s;
        }
    });
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]`, each operand given as (pointer, column stride, row
/// stride) over row-major storage.
///
/// # Safety
/// Every operand must cover the elements its strides address for these sizes.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    [m, n, k]: [usize; 3],
    dst: &mut [f32],
    accumulate: bool,
    (lhs, lhs_cs, lhs_rs): (&[f32], usize, usize),
    (rhs, rhs_cs, rhs_rs): (&[f32], usize, usize),
    parallelism: Parallelism,
) {
    debug_assert!(dst.len() >= m * n);
    debug_assert!(lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    debug_assert!(rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the caller guarantees the extents; `dst` is exclusively borrowed.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Parallelism inside each GEMM: none when the images alone keep every thread busy.
fn gemm_parallelism(batch: usize) -> Parallelism {
    match batch >= rayon::current_num_threads() {
        true => Parallelism::None,
        false => Parallelism::Rayon(0),
    }
}

/// The convolution of `x [B, Cin, H, W]` with `weight [Cout, Cin, kh, kw]` plus `bias [Cout]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    let (k, n) = (shape.col_rows(), shape.col_cols());
    let parallelism = gemm_parallelism(shape.batch);
    let mut y = vec![0.0; shape.batch * shape.output_len()];
    y.par_chunks_mut(shape.output_len())
        .zip(x.par_chunks(shape.input_len()))
        .for_each_init(
            || vec![0.0; k * n],
            |col, (out, image)| {
                im2col(image, shape, col);
                if let Some(bias) = bias {
                    for (row, b) in out.chunks_mut(n).zip(bias) {
                        row.fill(*b);
                    }
                }
                // SAFETY: weight is [Cout, K], col is [K, N], out is [Cout, N].
                unsafe {
                    matmul(
                        [shape.channels_out, n, k],
                        out,
                        bias.is_some(),
                        (weight, 1, k),
                        (col, 1, n),
                        parallelism,
                    )
                };
            },
        );
    y
}

/// Gradients of [`forward`] given `dy [B, Cout, out_h, out_w]`.
pub struct Gradients {
    /// `[B, Cin, H, W]`, when asked for.
    pub x: Option<Vec<f32>>,
    /// `[Cout, Cin, kh, kw]`.
    pub weight: Vec<f32>,
    /// `[Cout]`.
    pub bias: Vec<f32>,
}

/// Per-thread sums of the weight and bias gradients.
struct Partial {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Partial {
    fn zeros(shape: &ConvShape) -> Self {
        Self {
            weight: vec![0.0; shape.weight_len()],
            bias: vec![0.0; shape.channels_out],
        }
    }

    fn add(mut self, other: Partial) -> Self {
        for (a, b) in self.weight.iter_mut().zip(&other.weight) {
            *a += b;
        }
        for (a, b) in self.bias.iter_mut().zip(&other.bias) {
            *a += b;
        }
        self
    }
}

/// The weight, bias and (with `input_grad`) input gradients in one pass over the images.
pub fn backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    shape: &ConvShape,
    input_grad: bool,
) -> Gradients {
    let (k, n) = (shape.col_rows(), shape.col_cols());
    let parallelism = gemm_parallelism(shape.batch);
    let mut dx = vec![0.0; if input_grad { x.len() } else { 0 }];
    let dx_chunks: Vec<Option<&mut [f32]>> = match input_grad {
        true => dx.chunks_mut(shape.input_len()).map(Some).collect(),
        false => (0..shape.batch).map(|_| None).collect(),
    };
    let per_thread = shape.batch.div_ceil(rayon::current_num_threads()).max(1);
    let total = dx_chunks
        .into_par_iter()
        .zip(x.par_chunks(shape.input_len()))
        .zip(dy.par_chunks(shape.output_len()))
        .with_min_len(per_thread)
        .fold(
            || (Partial::zeros(shape), vec![0.0; k * n]),
            |(mut partial, mut col), ((dx_image, image), dy_image)| {
                im2col(image, shape, &mut col);
                // SAFETY: dy is [Cout, N], col read as colᵀ [N, K], weight grad is [Cout, K].
                unsafe {
                    matmul(
                        [shape.channels_out, k, n],
                        &mut partial.weight,
                        true,
                        (dy_image, 1, n),
                        (&col, n, 1),
                        parallelism,
                    )
                };
                for (b, row) in partial.bias.iter_mut().zip(dy_image.chunks(n)) {
                    *b += row.iter().sum::<f32>();
                }
                if let Some(dx_image) = dx_image {
                    // SAFETY: weight read as weightᵀ [K, Cout], dy is [Cout, N], col is [K, N].
                    unsafe {
                        matmul(
                            [k, n, shape.channels_out],
                            &mut col,
                            false,
                            (weight, k, 1),
                            (dy_image, 1, n),
                            parallelism,
                        )
                    };
                    col2im_add(&col, shape, dx_image);
                }
                (partial, col)
            },
        )
        .map(|(partial, _)| partial)
        .reduce(|| Partial::zeros(shape), Partial::add);
    Gradients {
        x: input_grad.then_some(dx),
        weight: total.weight,
        bias: total.bias,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_matches_a_direct_scan() {
        for (output, input, offset, padding, stride) in [
            (54, 224, 0, 1, 4),
            (54, 224, 10, 1, 4),
            (27, 27, 4, 2, 1),
            (3, 2, 0, 2, 1),
        ] {
            let inside: Vec<usize> = (0..output)
                .filter(|o| {
                    let pos = (o * stride + offset) as isize - padding as isize;
                    (0..input as isize).contains(&pos)
                })
                .collect();
            let (lo, hi) = valid_range(output, input, offset, padding, stride);
            assert_eq!((lo..hi).collect::<Vec<_>>(), inside);
        }
    }
}
