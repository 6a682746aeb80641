//! Convolution as im2col + GEMM on contiguous `f32` NCHW buffers.
//!
//! Per image, with `K = channels_in * kh * kw` and `N = out_h * out_w`:
//! - forward: `y[Cout, N] = W[Cout, K] · col[K, N] + b`
//! - weight gradient: `dW[Cout, K] += dy[Cout, N] · col[K, N]ᵀ`
//! - input gradient: `dcol[K, N] = W[Cout, K]ᵀ · dy[Cout, N]`, scattered back by col2im.
//!
//! The GEMMs run on the `gemm` crate (the one burn-flex uses), each on one thread. Small maps
//! go to the threads in groups of images side by side, so that each GEMM is large; large maps
//! (the first layers at 224 px) by a few output rows of one image at a time ([`RowTasks`]), so
//! that the columns stay in the core's cache. A strided layer's input rows are first split
//! into their phases ([`Phases`]), so that every copy into the columns is contiguous.

use std::ops::Range;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use crate::scratch::Scratch;
use crate::shared_output::Output;

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
    pub(crate) fn input_len(&self) -> usize {
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

/// Visits the column-matrix rows of one (input channel, kernel row) pair: every (kernel column,
/// output row of `out_rows`) with the input row it reads within the channel (`None` when it
/// lies in the padding), and the valid output columns with their first input column.
fn for_each_patch_row_of(
    shape: &ConvShape,
    ki: usize,
    out_rows: Range<usize>,
    mut visit: impl FnMut(usize, usize, Option<usize>, (usize, usize), usize),
) {
    let [in_h, in_w] = shape.input;
    let [out_h, out_w] = shape.output;
    let [sh, sw] = shape.stride;
    let [ph, pw] = shape.padding;
    let (row_lo, row_hi) = valid_range(out_h, in_h, ki, ph, sh);
    for kj in 0..shape.kernel[1] {
        let (lo, hi) = valid_range(out_w, in_w, kj, pw, sw);
        let first_ix = (lo * sw + kj).saturating_sub(pw);
        for oy in out_rows.clone() {
            let input_row = ((row_lo..row_hi).contains(&oy) && lo < hi).then(|| oy * sh + ki - ph);
            visit(kj, oy, input_row, (lo, hi), first_ix);
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

/// A group's images as im2col reads them: each channel's rows `first_row..first_row + rows`
/// split into their `phases` interleaved parts (for a stride `s` along the width, columns `p,
/// p + s, p + 2s, …` for each `p < s`), `[images, Cin, phases, rows, width]`. Every run im2col
/// copies is then contiguous; the stride-4 gathers of a first layer were most of its im2col
/// time. With stride 1 it is the images themselves.
struct Phases<'a> {
    values: &'a [f32],
    phases: usize,
    width: usize,
    first_row: usize,
    rows: usize,
}

impl Phases<'_> {
    /// Where the run of input row `iy` of `channel` that starts at input column `ix` begins.
    fn run_start(
        &self,
        shape: &ConvShape,
        image: usize,
        channel: usize,
        iy: usize,
        ix: usize,
    ) -> usize {
        let plane = (image * shape.channels_in + channel) * self.phases + ix % self.phases;
        (plane * self.rows + iy - self.first_row) * self.width + ix / self.phases
    }
}

/// Elements of `rows` input rows of a group of `images` split into phases (0 for stride 1,
/// which needs no copy).
fn phases_len(shape: &ConvShape, images: usize, rows: usize) -> usize {
    match shape.stride[1] {
        1 => 0,
        sw => images * shape.channels_in * sw * rows * shape.input[1].div_ceil(sw),
    }
}

/// Splits the input rows `rows` of `images` into their phases along the width (see
/// [`Phases`]).
fn split_phases<'a>(
    images: &'a [f32],
    shape: &ConvShape,
    rows: Range<usize>,
    split: &'a mut [f32],
) -> Phases<'a> {
    let ([in_h, in_w], sw) = (shape.input, shape.stride[1]);
    if sw == 1 {
        let (first_row, rows, width) = (0, in_h, in_w);
        return Phases {
            values: images,
            phases: 1,
            width,
            first_row,
            rows,
        };
    }
    let width = in_w.div_ceil(sw);
    // Empty when the rows all lie in the padding: then nothing is split, and nothing read.
    let plane_len = sw * rows.len() * width;
    if plane_len > 0 {
        for (plane, split) in images.chunks(in_h * in_w).zip(split.chunks_mut(plane_len)) {
            let plane = &plane[rows.start * in_w..rows.end * in_w];
            for (r, row) in plane.chunks(in_w).enumerate() {
                let at = |phase: usize| (phase * rows.len() + r) * width;
                match sw {
                    4 => split_row::<4>(row, split, at),
                    2 => split_row::<2>(row, split, at),
                    _ => split_row_any(row, sw, split, at),
                }
            }
        }
    }
    let (first_row, rows) = (rows.start, rows.len());
    Phases {
        values: split,
        phases: sw,
        width,
        first_row,
        rows,
    }
}

/// Deinterleaves `row` into its `S` phases, phase `p` (`row[p], row[p + S], …`, zero past the
/// row's end) at `split[at(p)..]`. `S` known at compile time lets the copies vectorise: the
/// first layers' stride of 4 took a tenth of their weight gradient as a strided loop.
fn split_row<const S: usize>(row: &[f32], split: &mut [f32], at: impl Fn(usize) -> usize) {
    let width = row.len().div_ceil(S);
    let whole = row.len() / S;
    let starts: [usize; S] = std::array::from_fn(&at);
    for (j, group) in row.chunks_exact(S).enumerate() {
        for (phase, value) in group.iter().enumerate() {
            split[starts[phase] + j] = *value;
        }
    }
    if whole < width {
        for (phase, start) in starts.iter().enumerate() {
            split[start + whole] = row.get(whole * S + phase).copied().unwrap_or(0.0);
        }
    }
}

/// [`split_row`] for any stride.
fn split_row_any(row: &[f32], sw: usize, split: &mut [f32], at: impl Fn(usize) -> usize) {
    let width = row.len().div_ceil(sw);
    for phase in 0..sw {
        let taken = row.get(phase..).unwrap_or_default().iter().step_by(sw);
        let split = &mut split[at(phase)..][..width];
        let unused = width - taken.len();
        for (dst, src) in split.iter_mut().zip(taken) {
            *dst = *src;
        }
        split[width - unused..].fill(0.0);
    }
}

/// Unfolds the (`channel`, `ki`) rows of one image, for the output rows `out_rows`, into its
/// block of those `kw` column-matrix rows.
fn im2col_rows(
    source: &Phases,
    image: usize,
    shape: &ConvShape,
    [channel, ki]: [usize; 2],
    out_rows: Range<usize>,
    rows: &mut [f32],
    block: Block,
) {
    let (out_w, first) = (shape.output[1], out_rows.start);
    for_each_patch_row_of(
        shape,
        ki,
        out_rows,
        |kj, oy, input_row, (lo, hi), first_ix| {
            let dst =
                &mut rows[kj * block.row_len + block.offset + (oy - first) * out_w..][..out_w];
            let Some(iy) = input_row else {
                dst.fill(0.0);
                return;
            };
            dst[..lo].fill(0.0);
            dst[hi..].fill(0.0);
            let start = source.run_start(shape, image, channel, iy, first_ix);
            dst[lo..hi].copy_from_slice(&source.values[start..][..hi - lo]);
        },
    );
}

/// Adds one image's block of `col` back onto its gradient `[Cin, H, W]` (the adjoint of
/// [`im2col_rows`]).
fn col2im_add(col: &[f32], shape: &ConvShape, image: &mut [f32], block: Block) {
    let [in_h, in_w] = shape.input;
    let [kh, kw] = shape.kernel;
    let (out_w, sw) = (shape.output[1], shape.stride[1]);
    for channel in 0..shape.channels_in {
        for ki in 0..kh {
            for_each_patch_row_of(
                shape,
                ki,
                0..shape.output[0],
                |kj, oy, input_row, (lo, hi), first_ix| {
                    let Some(iy) = input_row else { return };
                    let col_row = (channel * kh + ki) * kw + kj;
                    let src = &col[col_row * block.row_len + block.offset + oy * out_w..][lo..hi];
                    let dst = &mut image[(channel * in_h + iy) * in_w + first_ix..];
                    for (s, d) in src.iter().zip(dst.iter_mut().step_by(sw)) {
                        *d += *s;
                    }
                },
            );
        }
    }
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]`, each operand given as (pointer, column stride, row
/// stride) over row-major storage.
///
/// # Safety
/// Every operand must cover the elements its strides address for these sizes.
pub(crate) unsafe fn matmul(
    dims: [usize; 3],
    dst: &mut [f32],
    accumulate: bool,
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    parallelism: Parallelism,
) {
    debug_assert!(dst.len() >= dims[0] * dims[1]);
    // SAFETY: forwarded from the caller; `dst` is exclusively borrowed and holds `[m, n]`.
    unsafe {
        matmul_to(
            dims,
            (dst.as_mut_ptr(), dims[1]),
            accumulate,
            lhs,
            rhs,
            parallelism,
        )
    }
}

/// [`matmul`] into `dst` given as (pointer, row stride); without `accumulate`, `dst` is only
/// written (it may be memory not yet initialised).
///
/// # Safety
/// As [`matmul`]'s, and nothing else reads or writes `dst`'s `m` rows of `n` elements meanwhile.
pub(crate) unsafe fn matmul_to(
    [m, n, k]: [usize; 3],
    (dst, dst_rs): (*mut f32, usize),
    accumulate: bool,
    (lhs, lhs_cs, lhs_rs): (&[f32], usize, usize),
    (rhs, rhs_cs, rhs_rs): (&[f32], usize, usize),
    parallelism: Parallelism,
) {
    debug_assert!(lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    debug_assert!(rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the caller guarantees the extents and that `dst` is ours alone.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
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
    /// Whether there are too few images to give every thread a group, so that the steps of
    /// each group are shared out among the threads instead.
    pub(crate) fn few_images(&self) -> bool {
        matches!(self.parallelism, Parallelism::Rayon(_))
    }

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
/// With `parallel`, the rows are shared out among the threads by (input channel, kernel row).
fn im2col_group(images: &[f32], shape: &ConvShape, col: &mut [f32], parallel: bool) -> usize {
    let n = shape.col_cols();
    let count = images.len() / shape.input_len();
    let row_len = count * n;
    let mut split = Scratch::new(phases_len(shape, count, shape.input[0]));
    let source = split_phases(images, shape, 0..shape.input[0], &mut split);
    let [kh, kw] = shape.kernel;
    let unfold = |(pair, rows): (usize, &mut [f32])| {
        for image in 0..count {
            let block = Block {
                row_len,
                offset: image * n,
            };
            let (pair, out_rows) = ([pair / kh, pair % kh], 0..shape.output[0]);
            im2col_rows(&source, image, shape, pair, out_rows, rows, block);
        }
    };
    let col = &mut col[..shape.col_rows() * row_len];
    match parallel {
        true => col
            .par_chunks_mut(kw * row_len)
            .enumerate()
            .for_each(unfold),
        false => col.chunks_mut(kw * row_len).enumerate().for_each(unfold),
    }
    row_len
}

/// Products of fewer columns than this are shared out among the threads by output channel,
/// wider ones by column, when a group must use every thread. One image on two cores of an
/// Intel Xeon (family 6, model 167), medians of 5, against the `gemm` crate's own split: d2l's
/// conv2 at 96 px (100 columns) 0.8-0.9 ms against 0.9-1.3 by output channel, conv4 (16
/// columns) 0.4 against 0.6-0.9; at 224 px conv2 (676 columns) 3.5-4.0 against 4.8-7.4 by
/// column (5.6-7.1 by output channel). (Maps of [`MIN_GEMM_COLUMNS`] pixels or more, such as
/// torchvision's conv1, go by output rows instead: [`RowTasks`].)
const NARROW_COLUMNS: usize = 256;

/// Output channels per task when a product is shared out by output channel.
const ROWS_PER_TASK: usize = 32;

/// The convolution of `x [B, Cin, H, W]` with `weight [Cout, Cin, kh, kw]` plus `bias [Cout]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    if shape.col_cols() >= MIN_GEMM_COLUMNS {
        return forward_by_rows(x, weight, bias, shape);
    }
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
                let row_len = im2col_group(images, shape, col, grouping.few_images());
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

/// Columns of the column matrix that one task of the row-split paths unfolds and multiplies:
/// about this many, rounded up to whole output rows (550 for a 55-pixel-wide map).
const TASK_COLUMNS: usize = 512;

/// How the row-split paths ([`forward_by_rows`], [`weight_gradients_by_rows`]) share out maps
/// of at least [`MIN_GEMM_COLUMNS`] pixels (the first layers at 224 px), whose images need no
/// grouping: tasks of (image, up to `rows` output rows), each unfolding only its rows'
/// columns, so that they stay in the core's cache (a whole image's are 4.4 MB for
/// torchvision's conv1, where the L2 cache holds 1-2 MB). The direct convolution's strided
/// forward pass shares its maps out alike, with rows of its own.
pub(crate) struct RowTasks {
    /// Output rows per task at most.
    pub(crate) rows: usize,
    per_image: usize,
}

impl RowTasks {
    fn new(shape: &ConvShape) -> Self {
        let [out_h, out_w] = shape.output;
        Self::with_rows(shape, TASK_COLUMNS.div_ceil(out_w).min(out_h))
    }

    /// Tasks of up to `rows` output rows (at least one).
    pub(crate) fn with_rows(shape: &ConvShape, rows: usize) -> Self {
        let rows = rows.max(1);
        Self {
            rows,
            per_image: shape.output[0].div_ceil(rows),
        }
    }

    pub(crate) fn count(&self, shape: &ConvShape) -> usize {
        shape.batch * self.per_image
    }

    /// Task `task`'s image and output rows, and where in the output (or its gradient) the
    /// first of those rows begins.
    pub(crate) fn task(&self, shape: &ConvShape, task: usize) -> (usize, Range<usize>, usize) {
        let (image, chunk) = (task / self.per_image, task % self.per_image);
        let out_rows = chunk * self.rows..((chunk + 1) * self.rows).min(shape.output[0]);
        let first = image * shape.output_len() + out_rows.start * shape.output[1];
        (image, out_rows, first)
    }

    /// A task's buffers: its columns and its input rows split into phases.
    fn buffers(&self, shape: &ConvShape) -> (Scratch, Scratch) {
        // The most input rows a task reads: those of a task clear of the padding.
        let [sh, kh] = [shape.stride[0], shape.kernel[0]];
        let most_rows = ((self.rows - 1) * sh + kh).min(shape.input[0]);
        let columns = self.rows * shape.output[1];
        (
            Scratch::new(shape.col_rows() * columns),
            Scratch::new(phases_len(shape, 1, most_rows)),
        )
    }

    /// Unfolds the output rows `out_rows` of image `image` of `x` into `col[K, columns]`;
    /// returns the columns.
    fn unfold(
        x: &[f32],
        shape: &ConvShape,
        (image, out_rows): (usize, Range<usize>),
        (col, split): &mut (Scratch, Scratch),
    ) -> usize {
        let columns = out_rows.len() * shape.output[1];
        let image_values = &x[image * shape.input_len()..][..shape.input_len()];
        let in_rows = input_rows(shape, out_rows.clone());
        let source = split_phases(image_values, shape, in_rows, split);
        let [kh, kw] = shape.kernel;
        let block = Block {
            row_len: columns,
            offset: 0,
        };
        let col = &mut col[..shape.col_rows() * columns];
        for (pair, rows) in col.chunks_mut(kw * columns).enumerate() {
            let pair = [pair / kh, pair % kh];
            im2col_rows(&source, 0, shape, pair, out_rows.clone(), rows, block);
        }
        columns
    }
}

/// [`forward`] by [`RowTasks`], each multiplying its columns straight into the output, which
/// already holds the bias.
fn forward_by_rows(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    let (k, n, c_out) = (shape.col_rows(), shape.col_cols(), shape.channels_out);
    let tasks = RowTasks::new(shape);
    let len = shape.batch * shape.output_len();
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let out = Output(y.as_mut_ptr());
    (0..tasks.count(shape)).into_par_iter().for_each_init(
        || tasks.buffers(shape),
        |buffers, task| {
            let (image, out_rows, first) = tasks.task(shape, task);
            let columns = RowTasks::unfold(x, shape, (image, out_rows), buffers);
            for channel in 0..c_out {
                let value = bias.map_or(0.0, |bias| bias[channel]);
                for column in 0..columns {
                    // SAFETY: this task alone writes these output rows of this image, in
                    // every channel, inside `y`'s capacity.
                    unsafe { out.at(first + channel * n + column).write(value) };
                }
            }
            // SAFETY: weight is [Cout, K], col is [K, columns], and the task's output rows
            // are `columns` elements from `first` in each of the Cout planes of N elements.
            unsafe {
                matmul_to(
                    [c_out, columns, k],
                    (out.at(first), n),
                    true,
                    (weight, 1, k),
                    (&buffers.0, 1, columns),
                    Parallelism::None,
                )
            };
        },
    );
    // SAFETY: the tasks wrote every element: each (image, output rows) once, in every channel.
    unsafe { y.set_len(len) };
    y
}

/// [`backward`] without the input gradient (a first layer's) by [`RowTasks`], each multiplying
/// its rows of the output gradient, read where they lie, by its columns.
fn weight_gradients_by_rows(x: &[f32], dy: &[f32], shape: &ConvShape) -> Gradients {
    let (k, n, c_out) = (shape.col_rows(), shape.col_cols(), shape.channels_out);
    let tasks = RowTasks::new(shape);
    // One accumulator per thread, not per task.
    let per_thread = tasks.count(shape).div_ceil(rayon::current_num_threads());
    let new_sums = || (vec![0.0; shape.weight_len()], vec![0.0; c_out]);
    let (weight, bias) = (0..tasks.count(shape))
        .into_par_iter()
        .with_min_len(per_thread)
        .fold(
            || (new_sums(), tasks.buffers(shape)),
            |((mut weight, mut bias), mut buffers), task| {
                let (image, out_rows, first) = tasks.task(shape, task);
                let columns = RowTasks::unfold(x, shape, (image, out_rows), &mut buffers);
                // SAFETY: dy from `first` holds Cout rows of `columns` elements N apart, col
                // is read as colᵀ [columns, K], dW is [Cout, K].
                unsafe {
                    matmul(
                        [c_out, k, columns],
                        &mut weight,
                        true,
                        (&dy[first..], 1, n),
                        (&buffers.0, columns, 1),
                        Parallelism::None,
                    )
                };
                for (channel, b) in bias.iter_mut().enumerate() {
                    *b += dy[first + channel * n..][..columns].iter().sum::<f32>();
                }
                ((weight, bias), buffers)
            },
        )
        .map(|(sums, _)| sums)
        .reduce(
            new_sums,
            |(mut weight, mut bias), (other_weight, other_bias)| {
                add_assign(&mut weight, &other_weight);
                add_assign(&mut bias, &other_bias);
                (weight, bias)
            },
        );
    Gradients {
        x: None,
        weight,
        bias,
    }
}

/// The input rows that the output rows `out_rows` read (those outside the padding).
fn input_rows(shape: &ConvShape, out_rows: Range<usize>) -> Range<usize> {
    let ([sh, _], [ph, _], [kh, _]) = (shape.stride, shape.padding, shape.kernel);
    let start = (out_rows.start * sh).saturating_sub(ph).min(shape.input[0]);
    let end = ((out_rows.end.max(1) - 1) * sh + kh)
        .saturating_sub(ph)
        .min(shape.input[0]);
    start..end.max(start)
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
    if !input_grad && shape.col_cols() >= MIN_GEMM_COLUMNS {
        return weight_gradients_by_rows(x, dy, shape);
    }
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
                let row_len = im2col_group(images, shape, &mut acc.col, grouping.few_images());
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
    use crate::conv_shape;

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

    /// Every (output element, weight element, input element) triple of the convolution's sum,
    /// as flat indices, skipping inputs in the padding.
    fn for_each_tap(s: &ConvShape, mut visit: impl FnMut(usize, usize, usize)) {
        let ([h, w], [oh, ow], [kh, kw]) = (s.input, s.output, s.kernel);
        for (image, o) in (0..s.batch).flat_map(|i| (0..s.channels_out).map(move |o| (i, o))) {
            for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                let output = ((image * s.channels_out + o) * oh + oy) * ow + ox;
                for (c, ky, kx) in (0..s.channels_in)
                    .flat_map(|c| (0..kh).flat_map(move |ky| (0..kw).map(move |kx| (c, ky, kx))))
                {
                    let iy = (oy * s.stride[0] + ky).checked_sub(s.padding[0]);
                    let ix = (ox * s.stride[1] + kx).checked_sub(s.padding[1]);
                    if let (Some(iy), Some(ix)) = (iy.filter(|&v| v < h), ix.filter(|&v| v < w)) {
                        let input = ((image * s.channels_in + c) * h + iy) * w + ix;
                        visit(output, ((o * s.channels_in + c) * kh + ky) * kw + kx, input);
                    }
                }
            }
        }
    }

    /// The convolution by its definition.
    fn by_definition(x: &[f32], weight: &[f32], bias: &[f32], s: &ConvShape) -> Vec<f32> {
        let n = s.col_cols();
        let mut y: Vec<f32> = (0..s.batch * s.output_len())
            .map(|i| bias[i / n % s.channels_out])
            .collect();
        for_each_tap(s, |out, w, input| y[out] += x[input] * weight[w]);
        y
    }

    /// The input, weight and bias gradients of `sum(conv(x) * dy)` by their definition.
    fn gradients_by_definition(x: &[f32], weight: &[f32], dy: &[f32], s: &ConvShape) -> Gradients {
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; weight.len()];
        for_each_tap(s, |out, w, input| {
            dx[input] += dy[out] * weight[w];
            dw[w] += dy[out] * x[input];
        });
        let n = s.col_cols();
        let mut bias = vec![0.0; s.channels_out];
        for (i, row) in dy.chunks(n).enumerate() {
            bias[i % s.channels_out] += row.iter().sum::<f32>();
        }
        Gradients {
            x: Some(dx),
            weight: dw,
            bias,
        }
    }

    #[test]
    fn strided_layers_match_the_definition_on_any_number_of_threads() {
        // Strides along the width that split rows into phases of unequal length (22 = 3·7 + 1,
        // 26 = 4·6 + 2, 135 = 4·33 + 3), a stride along the height unlike the width's, taps
        // in the padding; the last map is large enough (1,056 pixels) to be split by output
        // rows.
        let shapes = [
            conv_shape(2, [3, 6], [70, 135], [11, 11], [2, 2], [2, 4]),
            conv_shape(3, [3, 8], [23, 22], [5, 7], [2, 1], [4, 3]),
            conv_shape(2, [2, 5], [19, 26], [11, 11], [2, 2], [4, 4]),
            conv_shape(1, [1, 4], [9, 10], [3, 3], [0, 0], [2, 2]),
        ];
        for threads in [1, 2, 8] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
            let pool = pool.as_ref().expect("a thread pool");
            for s in &shapes {
                let x = crate::noise(s.batch * s.input_len(), 1);
                let weight = crate::noise(s.weight_len(), 2);
                let bias = crate::noise(s.channels_out, 3);
                let dy = crate::noise(s.batch * s.output_len(), 4);
                let label = format!("{threads} threads, {s:?}");
                let y = pool.install(|| forward(&x, &weight, Some(&bias), s));
                let difference = crate::max_difference(&y, &by_definition(&x, &weight, &bias, s));
                assert!(difference < 1e-4, "output, {label}: {difference}");
                let expected = gradients_by_definition(&x, &weight, &dy, s);
                // With the input gradient, and without it as a first layer needs.
                for input_grad in [true, false] {
                    let got = pool.install(|| backward(&x, &weight, &dy, s, input_grad));
                    let label = format!("{label}, input gradient {input_grad}");
                    assert_eq!(got.x.is_some(), input_grad, "{label}");
                    for (name, got, expected) in [
                        ("input", got.x.as_deref(), expected.x.as_deref()),
                        ("weight", Some(&got.weight[..]), Some(&expected.weight[..])),
                        ("bias", Some(&got.bias[..]), Some(&expected.bias[..])),
                    ] {
                        let Some(got) = got else { continue };
                        let difference = crate::max_difference(got, expected.expect("made"));
                        assert!(difference < 1e-3, "{name} gradient, {label}: {difference}");
                    }
                }
            }
        }
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
        for (batch, channels, input, kernel, padding, stride) in shapes {
            let s = conv_shape(batch, channels, input, kernel, padding, stride);
            let x = crate::noise(batch * s.input_len(), 1);
            let weight = crate::noise(s.weight_len(), 2);
            let bias = crate::noise(s.channels_out, 3);
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
