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

use crate::scratch::Scratch;

/// The sizes of one 2-D convolution (one group, no dilation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// Elements of one image's input `[Cin, H, W]`.
    fn input_len(&self) -> usize {
        self.channels_in * self.input[0] * self.input[1]
    }

    /// Elements of one image's output `[Cout, out_h, out_w]`.
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

/// Where one image's columns sit in a column matrix shared by a group of images: rows of
/// `row_len` elements, this image's `N` columns starting at `offset`.
#[derive(Clone, Copy)]
struct Block {
    row_len: usize,
    offset: usize,
}

/// Unfolds one image `[Cin, H, W]` into its block of the column matrix `col[K, row_len]`.
fn im2col(image: &[f32], shape: &ConvShape, col: &mut [f32], block: Block) {
    let out_w = shape.output[1];
    let sw = shape.stride[1];
    for_each_patch_row(shape, |col_row, oy, input_row, (lo, hi), first_ix| {
        let dst = &mut col[col_row * block.row_len + block.offset + oy * out_w..][..out_w];
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

/// Adds one image's block of `col` back onto its gradient `[Cin, H, W]` (the adjoint of
/// [`im2col`]).
fn col2im_add(col: &[f32], shape: &ConvShape, image: &mut [f32], block: Block) {
    let out_w = shape.output[1];
    let sw = shape.stride[1];
    for_each_patch_row(shape, |col_row, oy, input_row, (lo, hi), first_ix| {
        let Some(start) = input_row else { return };
        let src = &col[col_row * block.row_len + block.offset + oy * out_w..][lo..hi];
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
pub(crate) unsafe fn matmul(
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

/// Columns a GEMM should have at least; smaller feature maps are grouped to reach it, as long
/// as every thread still gets a group.
const MIN_GEMM_COLUMNS: usize = 1024;

/// How the images are split: groups of `size` images per task, one GEMM per group.
#[derive(Clone, Copy)]
pub(crate) struct Grouping {
    /// Images per group.
    pub(crate) size: usize,
    /// Threads inside each GEMM.
    pub(crate) parallelism: Parallelism,
}

impl Grouping {
    fn new(shape: &ConvShape) -> Self {
        Self::for_columns(shape.batch, shape.col_cols())
    }

    /// Groups for `batch` images that each give a GEMM `columns` columns.
    pub(crate) fn for_columns(batch: usize, columns: usize) -> Self {
        let threads = rayon::current_num_threads();
        let per_thread = batch.div_ceil(threads).max(1);
        // Equal groups, as few per thread as give each GEMM MIN_GEMM_COLUMNS columns.
        let wanted = MIN_GEMM_COLUMNS.div_ceil(columns).clamp(1, per_thread);
        let groups_per_thread = per_thread.div_ceil(wanted);
        Self {
            size: per_thread.div_ceil(groups_per_thread),
            // Parallel GEMMs only when there are too few images to keep every thread busy.
            parallelism: match batch >= threads {
                true => Parallelism::None,
                false => Parallelism::Rayon(0),
            },
        }
    }
}

/// Unfolds a group of images side by side into `col[K, images * N]`; returns the row length.
fn im2col_group(images: &[f32], shape: &ConvShape, col: &mut [f32]) -> usize {
    let n = shape.col_cols();
    let row_len = images.len() / shape.input_len() * n;
    for (i, image) in images.chunks(shape.input_len()).enumerate() {
        im2col(
            image,
            shape,
            col,
            Block {
                row_len,
                offset: i * n,
            },
        );
    }
    row_len
}

/// Products of fewer columns than this are shared out among the threads by output channel,
/// wider ones by column, when a group must use every thread. One image on two cores of an
/// Intel Xeon (family 6, model 167), medians of 5, against the `gemm` crate's own split: d2l's
/// conv2 at 96 px (100 columns) 0.8-0.9 ms against 0.9-1.3 by output channel, conv4 (16
/// columns) 0.4 against 0.6-0.9; at 224 px conv2 (676 columns) 3.5-4.0 against 4.8-7.4 by
/// column (5.6-7.1 by output channel), torchvision's conv1 (3,025 columns) 1.6-2.3 against
/// 2.6-2.9.
const NARROW_COLUMNS: usize = 256;

/// Output channels per task when a product is shared out by output channel.
const ROWS_PER_TASK: usize = 32;

/// The convolution of `x [B, Cin, H, W]` with `weight [Cout, Cin, kh, kw]` plus `bias [Cout]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    let (k, n, c_out) = (shape.col_rows(), shape.col_cols(), shape.channels_out);
    let grouping = Grouping::new(shape);
    let mut y = vec![0.0; shape.batch * shape.output_len()];
    y.par_chunks_mut(grouping.size * shape.output_len())
        .zip(x.par_chunks(grouping.size * shape.input_len()))
        .for_each_init(
            || {
                let columns = grouping.size * n;
                (Scratch::new(k * columns), Scratch::new(c_out * columns))
            },
            |(col, product), (outputs, images)| {
                let row_len = im2col_group(images, shape, col);
                let col: &[f32] = col;
                // `product[rows, columns] = weight[rows, K] · col[K, first..first + columns]`.
                let multiply = |product: &mut [f32], weight: &[f32], first: usize| {
                    let rows = weight.len() / k;
                    let columns = product.len() / rows;
                    // SAFETY: weight is [rows, K], col from `first` is [K, columns] with rows
                    // of row_len, product is [rows, columns].
                    unsafe {
                        matmul(
                            [rows, columns, k],
                            product,
                            false,
                            (weight, 1, k),
                            (&col[first..], 1, row_len),
                            Parallelism::None,
                        )
                    }
                };
                // With too few images for a group per thread, the product is shared out among
                // the threads, each computing its part on one thread: by output channel when
                // it is narrow, else by column, each thread's columns stored as a block
                // `[Cout, columns]`. (The `gemm` crate's own split of these products ran up to
                // twice as long.)
                let product = &mut product[..c_out * row_len];
                // Columns per block of `product`.
                let block = match grouping.parallelism {
                    Parallelism::None => {
                        multiply(product, weight, 0);
                        row_len
                    }
                    Parallelism::Rayon(_) if row_len < NARROW_COLUMNS => {
                        product
                            .par_chunks_mut(ROWS_PER_TASK * row_len)
                            .zip(weight.par_chunks(ROWS_PER_TASK * k))
                            .for_each(|(product, weight)| multiply(product, weight, 0));
                        row_len
                    }
                    Parallelism::Rayon(_) => {
                        let block = row_len.div_ceil(rayon::current_num_threads());
                        product
                            .par_chunks_mut(c_out * block)
                            .enumerate()
                            .for_each(|(t, product)| multiply(product, weight, t * block));
                        block
                    }
                };
                for (t, product) in product.chunks(c_out * block).enumerate() {
                    add_bias_into(outputs, product, t * block, bias, shape);
                }
            },
        );
    y
}

/// Writes a block of a group's product, `[Cout, columns]` for the group's columns from `first`
/// on (column `i · N + p` is pixel `p` of image `i`), plus `bias`, into the group's outputs
/// `[images, Cout, N]`.
fn add_bias_into(
    outputs: &mut [f32],
    product: &[f32],
    first: usize,
    bias: Option<&[f32]>,
    shape: &ConvShape,
) {
    let n = shape.col_cols();
    let columns = product.len() / shape.channels_out;
    for (channel, src) in product.chunks_exact(columns).enumerate() {
        let b = bias.map_or(0.0, |bias| bias[channel]);
        let mut done = 0;
        while done < columns {
            let (image, pixel) = ((first + done) / n, (first + done) % n);
            let run = (n - pixel).min(columns - done);
            let dst = &mut outputs[image * shape.output_len() + channel * n + pixel..][..run];
            for (dst, value) in dst.iter_mut().zip(&src[done..done + run]) {
                *dst = value + b;
            }
            done += run;
        }
    }
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

/// One task's buffers and its sums of the weight and bias gradients.
struct Accumulator {
    weight: Vec<f32>,
    bias: Vec<f32>,
    col: Scratch,
    dy: Scratch,
}

impl Accumulator {
    fn new(shape: &ConvShape, group: usize) -> Self {
        let columns = group * shape.col_cols();
        Self {
            weight: vec![0.0; shape.weight_len()],
            bias: vec![0.0; shape.channels_out],
            col: Scratch::new(shape.col_rows() * columns),
            dy: Scratch::new(shape.channels_out * columns),
        }
    }

    fn add(mut self, other: Accumulator) -> Self {
        add_assign(&mut self.weight, &other.weight);
        add_assign(&mut self.bias, &other.bias);
        self
    }
}

/// `sum += other`, element by element: merges two threads' gradient sums.
pub(crate) fn add_assign(sum: &mut [f32], other: &[f32]) {
    for (a, b) in sum.iter_mut().zip(other) {
        *a += b;
    }
}

/// Lays a group's output gradients `[images][Cout][N]` side by side as `[Cout, images * N]`.
fn gather_rows(dy: &[f32], shape: &ConvShape, row_len: usize, grouped: &mut [f32]) {
    let n = shape.col_cols();
    for (i, image) in dy.chunks(shape.output_len()).enumerate() {
        for (channel, row) in image.chunks(n).enumerate() {
            grouped[channel * row_len + i * n..][..n].copy_from_slice(row);
        }
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
    let (k, n, c_out) = (shape.col_rows(), shape.col_cols(), shape.channels_out);
    let grouping = Grouping::new(shape);
    let (in_group, out_group) = (
        grouping.size * shape.input_len(),
        grouping.size * shape.output_len(),
    );
    let mut dx = vec![0.0; if input_grad { x.len() } else { 0 }];
    let dx_groups: Vec<Option<&mut [f32]>> = match input_grad {
        true => dx.chunks_mut(in_group).map(Some).collect(),
        false => x.chunks(in_group).map(|_| None).collect(),
    };
    // One accumulator (a weight-gradient copy and buffers) per thread, not per group.
    let groups_per_thread = dx_groups.len().div_ceil(rayon::current_num_threads());
    let total = dx_groups
        .into_par_iter()
        .zip(x.par_chunks(in_group))
        .zip(dy.par_chunks(out_group))
        .with_min_len(groups_per_thread)
        .fold(
            || Accumulator::new(shape, grouping.size),
            |mut acc, ((dx_group, images), dy_group)| {
                let row_len = im2col_group(images, shape, &mut acc.col);
                gather_rows(dy_group, shape, row_len, &mut acc.dy);
                let dy_rows = &acc.dy[..c_out * row_len];
                // SAFETY: dy is [Cout, row_len], col read as colᵀ [row_len, K], dW is [Cout, K].
                unsafe {
                    matmul(
                        [c_out, k, row_len],
                        &mut acc.weight,
                        true,
                        (dy_rows, 1, row_len),
                        (&acc.col, row_len, 1),
                        grouping.parallelism,
                    )
                };
                for (b, row) in acc.bias.iter_mut().zip(dy_rows.chunks(row_len)) {
                    *b += row.iter().sum::<f32>();
                }
                if let Some(dx_group) = dx_group {
                    // SAFETY: weight read as weightᵀ [K, Cout], dy is [Cout, row_len], col is
                    // [K, row_len].
                    unsafe {
                        matmul(
                            [k, row_len, c_out],
                            &mut acc.col,
                            false,
                            (weight, k, 1),
                            (dy_rows, 1, row_len),
                            grouping.parallelism,
                        )
                    };
                    for (i, dx_image) in dx_group.chunks_mut(shape.input_len()).enumerate() {
                        col2im_add(
                            &acc.col,
                            shape,
                            dx_image,
                            Block {
                                row_len,
                                offset: i * n,
                            },
                        );
                    }
                }
                acc
            },
        )
        .reduce(|| Accumulator::new(shape, 0), Accumulator::add);
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

    /// The convolution by its definition, one output at a time.
    fn by_definition(x: &[f32], weight: &[f32], bias: &[f32], s: &ConvShape) -> Vec<f32> {
        let ([h, w], [oh, ow], [kh, kw]) = (s.input, s.output, s.kernel);
        let mut y = Vec::with_capacity(s.batch * s.output_len());
        for image in 0..s.batch {
            for o in 0..s.channels_out {
                for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                    let mut sum = bias[o];
                    for (c, ky, kx) in (0..s.channels_in).flat_map(|c| {
                        (0..kh).flat_map(move |ky| (0..kw).map(move |kx| (c, ky, kx)))
                    }) {
                        let iy = (oy * s.stride[0] + ky).checked_sub(s.padding[0]);
                        let ix = (ox * s.stride[1] + kx).checked_sub(s.padding[1]);
                        if let (Some(iy), Some(ix)) = (iy.filter(|&v| v < h), ix.filter(|&v| v < w))
                        {
                            let input = x[((image * s.channels_in + c) * h + iy) * w + ix];
                            sum += input * weight[((o * s.channels_in + c) * kh + ky) * kw + kx];
                        }
                    }
                    y.push(sum);
                }
            }
        }
        y
    }

    #[test]
    fn products_shared_out_among_threads_match_the_definition() {
        // Fewer images than threads. Narrow products (under 256 columns) are shared out by
        // output channel, 70 of them in tasks of 32 (the last one short); wide ones by column,
        // in blocks that split an image's rows (stride 4 too, as a first layer).
        let shapes = [
            (1, [16, 70], [5, 5], [3, 3], [1, 1], [1, 1]),
            (3, [8, 70], [10, 10], [5, 5], [2, 2], [1, 1]),
            (1, [3, 70], [40, 40], [5, 5], [2, 2], [1, 1]),
            (3, [3, 16], [120, 120], [11, 11], [2, 2], [4, 4]),
        ];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(8).build();
        for (batch, [channels_in, channels_out], input, kernel, padding, stride) in shapes {
            let output = [0, 1].map(|a| (input[a] + 2 * padding[a] - kernel[a]) / stride[a] + 1);
            let s = ConvShape {
                batch,
                channels_in,
                input,
                channels_out,
                kernel,
                stride,
                padding,
                output,
            };
            let x = crate::noise(batch * s.input_len(), 1);
            let weight = crate::noise(s.weight_len(), 2);
            let bias = crate::noise(channels_out, 3);
            let expected = by_definition(&x, &weight, &bias, &s);
            let y = pool
                .as_ref()
                .expect("a thread pool")
                .install(|| forward(&x, &weight, Some(&bias), &s));
            let difference = crate::max_difference(&y, &expected);
            assert!(difference < 1e-4, "{s:?}: {difference}");
        }
    }
}
