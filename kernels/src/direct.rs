//! Direct convolution for stride-1 layers on maps too small for Winograd (conv2 to conv5 at 96
//! px), with AVX-512 or AVX2: the forward pass, the input gradient (the forward pass of the
//! transposed convolution) and the weight gradient; the forward pass of strided first layers
//! (conv1 at every size, [`strided_forward`]); and their weight gradient on small maps (conv1
//! at 96 px, [`strided_weight_grad`]).
//!
//! Why not im2col + GEMM there: the column matrix holds the padding too, and the GEMM
//! multiplies it. A 5x5 kernel with padding 2 on a 10x10 map reads the padding in 23% of its
//! products, a 3x3 kernel on a 4x4 map in 31%; PyTorch's oneDNN skips them (its direct
//! convolution) and was 1.5x faster at these layers on an AMD EPYC Zen 4, although the `gemm`
//! crate runs at 94% of the core's peak there. Here one register tile computes one output pixel
//! of up to six images for a panel of output channels (64 with AVX-512, 16 with AVX2) and sums
//! over only the kernel taps that fall inside the image. Inside one kernel row those taps read
//! neighbouring pixels, which a channels-last copy of the input stores side by side, and the
//! packed weights are stored in the same (kernel row, kernel column, channel) order: each
//! kernel row is one contiguous run of products on both sides. The weight gradient runs the
//! same tile over (input channel, output channel) for one kernel tap, summing over the output
//! pixels whose tap lies inside. The tile scatters its sums straight into the result's layout.

use std::ops::Range;

use rayon::prelude::*;

use crate::cpu::Isa;
use crate::im2col::{ConvShape, RowTasks};
use crate::scratch::Scratch;
use crate::shared_output::Output;

/// Rows of the register tile (images; input channels in the weight gradient): six rows of four
/// 16-lane vectors keep 24 accumulators in AVX-512's 32 registers, six rows of two 8-lane
/// vectors 12 in AVX2's 16.
const TILE_ROWS: usize = 6;

/// The output channels cut into panels, each as wide as one register tile of `isa`: 64
/// channels with AVX-512, 16 with AVX2; a last panel is half as wide when no more channels are
/// left (conv2's input gradient has 96).
#[derive(Clone, Copy, Debug)]
struct Panels {
    isa: Isa,
    channels: usize,
    count: usize,
    full: usize,
}

impl Panels {
    fn new(isa: Isa, channels: usize) -> Self {
        let full = full_panel(isa);
        let count = channels.div_ceil(full);
        Self {
            isa,
            channels,
            count,
            full,
        }
    }

    /// Panels half as wide with AVX-512 (32 channels), whose tiles take twice as many rows.
    fn narrow(isa: Isa, channels: usize) -> Self {
        let full = match isa {
            Isa::Avx512 => full_panel(isa) / 2,
            Isa::Avx2 => full_panel(isa),
        };
        Self {
            full,
            count: channels.div_ceil(full),
            ..Self::new(isa, channels)
        }
    }

    /// The first channel of panel `panel`.
    fn start(self, panel: usize) -> usize {
        panel * self.full
    }

    /// The panel's width in the packed weights and in the tile: full, or half.
    fn width(self, panel: usize) -> usize {
        match self.channels - self.start(panel) {
            left if left <= self.full / 2 => self.full / 2,
            _ => self.full,
        }
    }

    /// The panel's real channels (the rest of its width is padding).
    fn lanes(self, panel: usize) -> usize {
        (self.channels - self.start(panel)).min(self.full)
    }
}

/// The lanes of one vector register.
const fn vector_lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
    }
}

/// The most rows of a tile `width` lanes wide.
const fn max_tile_rows(isa: Isa, width: usize) -> usize {
    match (isa, width / vector_lanes(isa)) {
        (Isa::Avx512, 1 | 2) => 12,
        _ => TILE_ROWS,
    }
}

/// The output channels of a full panel: the tile's vectors times their lanes.
const fn full_panel(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 4 * 16,
        Isa::Avx2 => 2 * 8,
    }
}

/// Whether this module computes `shape`'s forward pass and gradients: stride 1, a
/// padding narrower than the kernel (so that the transposed convolution has a padding too),
/// enough images to fill a tile, and a CPU with AVX-512 or AVX2.
pub fn applies(shape: &ConvShape) -> bool {
    shape.stride == [1, 1]
        && shape.batch >= TILE_ROWS
        && (0..2).all(|axis| shape.padding[axis] < shape.kernel[axis])
        && Isa::best().is_some()
}

/// The instruction set the tiles run on here.
///
/// # Panics
/// On a CPU without AVX-512 or AVX2 (see [`applies`]).
fn isa() -> Isa {
    Isa::best().expect("the direct convolution needs AVX-512 or AVX2 (see `applies`)")
}

/// `y = x * weight + bias` for `x [B, Cin, H, W]` and `weight [Cout, Cin, kh, kw]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    forward_on(isa(), x, weight, bias, shape)
}

fn forward_on(
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: &ConvShape,
) -> Vec<f32> {
    let panels = Panels::new(isa, shape.channels_out);
    let packed = pack_forward(weight, shape, panels);
    convolve(x, &packed, bias, shape, panels)
}

/// The forward pass's weight as `panels` (see [`pack`]).
fn pack_forward(weight: &[f32], shape: &ConvShape, panels: Panels) -> Scratch {
    let taps = shape.kernel[0] * shape.kernel[1];
    let source = Source {
        out_stride: shape.channels_in * taps,
        in_stride: taps,
        flipped: false,
    };
    pack(weight, source, shape, panels)
}

/// The input gradient `dx [B, Cin, H, W]` for the output gradient `dy [B, Cout, OH, OW]`: the
/// convolution of `dy` with the weight turned half round and its channels swapped, padded by
/// `kernel - 1 - padding`.
pub fn input_grad(dy: &[f32], weight: &[f32], shape: &ConvShape) -> Vec<f32> {
    input_grad_on(isa(), dy, weight, shape)
}

fn input_grad_on(isa: Isa, dy: &[f32], weight: &[f32], shape: &ConvShape) -> Vec<f32> {
    let panels = Panels::new(isa, shape.channels_in);
    let [kh, kw] = shape.kernel;
    let cin = shape.channels_in;
    let transposed = ConvShape {
        channels_in: shape.channels_out,
        input: shape.output,
        channels_out: cin,
        output: shape.input,
        padding: [kh - 1 - shape.padding[0], kw - 1 - shape.padding[1]],
        ..*shape
    };
    let source = Source {
        out_stride: kh * kw,
        in_stride: cin * kh * kw,
        flipped: true,
    };
    let packed = pack(weight, source, &transposed, panels);
    convolve(dy, &packed, None, &transposed, panels)
}

/// The weight gradient `[Cout, Cin, kh, kw]` and the bias gradient `[Cout]` for the output
/// gradient `dy [B, Cout, OH, OW]`. Each kernel tap's gradient sums, over the output pixels
/// whose tap lies inside the image, the input pixel it reads times the output gradient: tasks
/// of (output-channel panel, tap, block of `TILE_ROWS` input channels), the tile's rows input
/// channels and its vectors output channels, its runs one per output pixel over the batch.
pub fn weight_grad(x: &[f32], dy: &[f32], shape: &ConvShape) -> (Vec<f32>, Vec<f32>) {
    weight_grad_on(isa(), x, dy, shape)
}

fn weight_grad_on(isa: Isa, x: &[f32], dy: &[f32], shape: &ConvShape) -> (Vec<f32>, Vec<f32>) {
    let [in_pixels, out_pixels] = [shape.input, shape.output].map(|[h, w]| h * w);
    let (cin, cout) = (shape.channels_in, shape.channels_out);
    let taps = shape.kernel[0] * shape.kernel[1];
    let panels = Panels::new(isa, cout);
    let x_last = channels_last(x, cin, in_pixels);
    let dy_panels = panels_last(dy, out_pixels, panels);
    let panel_len = shape.batch * out_pixels * panels.full;
    let along_rows = shape.output[1] >= ROW_RUNS_FROM;
    let [x_step, dy_step] = match along_rows {
        true => [cin, panels.full],
        false => [in_pixels * cin, out_pixels * panels.full],
    };
    let mut weight = vec![0.0; cout * cin * taps];
    let out = Output(weight.as_mut_ptr());
    let blocks = cin.div_ceil(TILE_ROWS);
    (0..panels.count * taps * blocks)
        .into_par_iter()
        .for_each_init(Vec::new, |runs, task| {
            let (panel, tap_index) = (task / (taps * blocks), task / blocks % taps);
            let first = task % blocks * TILE_ROWS;
            let kernel_width = shape.kernel[1];
            let tap = [tap_index / kernel_width, tap_index % kernel_width];
            tap_runs(shape, tap, panels.full, along_rows, runs);
            let x_side = Side {
                values: &x_last[first..x.len()],
                row_stride: 1,
                step: x_step,
            };
            let dy_side = Side {
                values: &dy_panels[panel * panel_len..][..panel_len],
                row_stride: 0,
                step: dy_step,
            };
            let rows = TILE_ROWS.min(cin - first);
            // The weight's `[Cout, Cin, kh, kw]` layout: rows are input channels, lanes output
            // channels.
            let offset = (panels.start(panel) * cin + first) * taps + tap_index;
            let target = Target {
                row_stride: taps,
                lane_stride: cin * taps,
                lanes: panels.lanes(panel),
                room: cout * cin * taps - offset,
            };
            // SAFETY: the tile writes this task's own (tap, input channels, output channels)
            // weights, inside `weight` (`room`).
            unsafe {
                tile(
                    isa,
                    [rows, panels.width(panel)],
                    runs,
                    x_side,
                    dy_side,
                    (out.at(offset), target),
                )
            };
        });
    (weight, bias_grad(dy, cout, out_pixels))
}

/// Output columns from which the weight gradient's runs go along output rows: on smaller maps
/// a row holds too few of a tap's products (three or four of a 3x3 kernel's on a 4x4 map), and
/// the runs go over the batch instead.
const ROW_RUNS_FROM: usize = 8;

/// The runs of kernel tap `(di, dj)` over the output pixels whose tap lies inside the image:
/// `along_rows`, one per image and output row; else one per output pixel, over the batch.
/// Offsets into the channels-last input and into a panel of the output gradient (`full`
/// values per pixel, see [`panels_last`]).
fn tap_runs(
    shape: &ConvShape,
    [di, dj]: [usize; 2],
    full: usize,
    along_rows: bool,
    out: &mut Vec<Run>,
) {
    let ([h, w], [oh, ow], [ph, pw]) = (shape.input, shape.output, shape.padding);
    let inside = |d: usize, size: usize, p: usize, outputs: usize| {
        p.saturating_sub(d)..(size + p).saturating_sub(d).min(outputs)
    };
    let (rows, cols) = (inside(di, h, ph, oh), inside(dj, w, pw, ow));
    let run = |image: usize, oy: usize, ox: usize, len: usize| Run {
        input: ((image * h + oy + di - ph) * w + ox + dj - pw) * shape.channels_in,
        weight: ((image * oh + oy) * ow + ox) * full,
        len,
    };
    out.clear();
    if cols.is_empty() {
        return;
    }
    if along_rows {
        for image in 0..shape.batch {
            out.extend(
                rows.clone()
                    .map(|oy| run(image, oy, cols.start, cols.len())),
            );
        }
    } else {
        for oy in rows {
            out.extend(cols.clone().map(|ox| run(0, oy, ox, shape.batch)));
        }
    }
}

/// Whether [`strided_forward`] computes `shape`'s forward pass: a first layer (a stride above
/// 1, at most three input channels) on a CPU with AVX-512 or AVX2.
pub fn takes_strided_forward(shape: &ConvShape) -> bool {
    shape.stride != [1, 1] && shape.channels_in <= 3 && Isa::best().is_some()
}

/// Output rows per task of [`strided_forward`] at most: a band of an image's input rows that
/// stays in the core's cache while every tile of those rows reads it.
const STRIDED_ROWS_PER_TASK: usize = 8;

/// The L1 data cache a panel's packed weights should fit in: the smallest of the cores this
/// runs on (AMD Zen 4: 32 KB; Zen 5 and Intel Xeon: 48 KB).
const L1_BYTES: usize = 32 << 10;

/// Tasks per thread that [`strided_forward`] makes at least, by cutting images into fewer
/// rows, so that one or two 96-px images still share out evenly.
const STRIDED_TASKS_PER_THREAD: usize = 4;

/// `y = x * weight + bias` for a first layer (conv1: 11x11, stride 4, one or three input
/// channels) without a column matrix. im2col + GEMM copied each input pixel into about eight
/// columns (121 taps over a stride of 4 by 4) and the GEMM packed them again; here the tile's
/// rows are neighbouring output pixels of one output row, its runs one (input channel, kernel
/// row) each along the kernel row, read where they lie in a zero-padded band of the image's
/// input rows (a row stride of `stride` between the tile's rows).
pub fn strided_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: &ConvShape,
) -> Vec<f32> {
    strided_forward_on(isa(), x, weight, bias, shape)
}

fn strided_forward_on(
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: &ConvShape,
) -> Vec<f32> {
    let layer = StridedLayer::new(isa, weight, shape);
    let band = &layer.band;
    let len = shape.batch * shape.channels_out * shape.output[0] * shape.output[1];
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let out = Output(y.as_mut_ptr());
    (0..band.tasks.count(shape)).into_par_iter().for_each_init(
        || Scratch::new(band.len(shape)),
        |values, task| {
            let (image, out_rows, _) = band.tasks.task(shape, task);
            let image_values = &x[image * shape.input_len()..][..shape.input_len()];
            band.copy(image_values, shape, out_rows.start, values);
            // SAFETY: this task alone writes these output rows of this image, in every
            // channel, inside `y`'s capacity.
            unsafe { layer.convolve_rows(image, out_rows, values, bias, (out, len)) };
        },
    );
    // SAFETY: the tasks wrote every element: each (image, output rows) once, in every channel.
    unsafe { y.set_len(len) };
    y
}

/// A first layer's packed weights by panel, and the band and runs its tiles read.
struct StridedLayer<'a> {
    isa: Isa,
    shape: &'a ConvShape,
    panels: Panels,
    packed: Scratch,
    band: Band,
    /// Each panel's runs (their weight offsets depend on its width).
    runs: Vec<Vec<Run>>,
}

impl<'a> StridedLayer<'a> {
    fn new(isa: Isa, weight: &[f32], shape: &'a ConvShape) -> Self {
        // Every tile reads its panel's packed weights whole. Where a full panel's outgrow
        // the L1 cache (93 KB for torchvision's conv1), panels of 32 channels (46 KB), whose
        // tiles take twice the pixels (11 of a 55-pixel row), ran 10% faster at batch 32;
        // where they fit (d2l's, 31 KB), full panels read the band fewer times and ran 3-7%
        // faster.
        let full = Panels::new(isa, shape.channels_out);
        let panels = match panel_len(shape, full) * size_of::<f32>() <= L1_BYTES {
            true => full,
            false => Panels::narrow(isa, shape.channels_out),
        };
        let band = Band::new(shape);
        let runs = (0..panels.count)
            .map(|panel| band.runs(shape, panels.width(panel)))
            .collect();
        Self {
            isa,
            shape,
            panels,
            packed: pack_forward(weight, shape, panels),
            band,
            runs,
        }
    }

    /// Writes the output rows `out_rows` of image `image`, in every channel, plus `bias`,
    /// from the band `values` that [`Band::copy`] filled.
    ///
    /// # Safety
    /// `out` points to the layer's output of `len` values, whose rows here no other thread
    /// touches meanwhile.
    unsafe fn convolve_rows(
        &self,
        image: usize,
        out_rows: Range<usize>,
        values: &[f32],
        bias: Option<&[f32]>,
        (out, len): (Output, usize),
    ) {
        let (shape, panels) = (self.shape, self.panels);
        let ([oh, ow], [sh, sw], cout) = (shape.output, shape.stride, shape.channels_out);
        let panel_len = panel_len(shape, panels);
        for panel in 0..panels.count {
            let width = panels.width(panel);
            let w_side = Side {
                values: &self.packed[panel * panel_len..][..panel_len],
                row_stride: 0,
                step: shape.channels_in * width,
            };
            let tiles = ow.div_ceil(max_tile_rows(self.isa, width));
            for oy in out_rows.clone() {
                for t in 0..tiles {
                    let (ox, rows) = image_block(ow, tiles, t);
                    let from = (oy - out_rows.start) * sh * self.band.width + ox * sw;
                    let x_side = Side {
                        values: &values[from..self.band.len(shape)],
                        row_stride: sw,
                        step: 1,
                    };
                    let offset = (image * cout + panels.start(panel)) * oh * ow + oy * ow + ox;
                    let target = Target {
                        row_stride: 1,
                        lane_stride: oh * ow,
                        lanes: panels.lanes(panel),
                        room: len - offset,
                    };
                    let runs = &self.runs[panel];
                    // SAFETY: these output pixels of this image lie inside the output
                    // (`room`), and are the caller's alone.
                    unsafe {
                        tile(
                            self.isa,
                            [rows, width],
                            runs,
                            x_side,
                            w_side,
                            (out.at(offset), target),
                        )
                    };
                }
            }
        }
        let pixels = out_rows.start * ow..out_rows.end * ow;
        for channel in 0..cout {
            let b = bias.map_or(0.0, |bias| bias[channel]);
            let start = (image * cout + channel) * oh * ow + pixels.start;
            // SAFETY: the tiles above wrote these pixels, which are the caller's alone.
            let plane = unsafe { std::slice::from_raw_parts_mut(out.at(start), pixels.len()) };
            plane.iter_mut().for_each(|value| *value += b);
        }
    }
}

/// The input rows that a task of [`strided_forward`] reads for its output rows, in a border of
/// zeros as wide as the padding: `[Cin][rows][width]`.
struct Band {
    /// The tasks: (image, up to `tasks.rows` output rows).
    tasks: RowTasks,
    rows: usize,
    width: usize,
}

impl Band {
    fn new(shape: &ConvShape) -> Self {
        let ([sh, _], [kh, _], oh) = (shape.stride, shape.kernel, shape.output[0]);
        let wanted = STRIDED_TASKS_PER_THREAD * rayon::current_num_threads();
        let out_rows = STRIDED_ROWS_PER_TASK.min(oh.div_ceil(wanted.div_ceil(shape.batch)));
        // The columns the tiles read: the right padding may be wider than the left.
        let ([_, sw], [_, kw], [_, w], [_, pw]) =
            (shape.stride, shape.kernel, shape.input, shape.padding);
        let width = ((shape.output[1] - 1) * sw + kw).max(pw + w);
        let tasks = RowTasks::with_rows(shape, out_rows);
        Self {
            rows: (tasks.rows - 1) * sh + kh,
            tasks,
            width,
        }
    }

    fn len(&self, shape: &ConvShape) -> usize {
        shape.channels_in * self.rows * self.width
    }

    /// The runs of every tile: one per (input channel, kernel row), along the kernel row, from
    /// the band's first row and column and the packed weights' `[kh][kw][Cin][width]` layout.
    fn runs(&self, shape: &ConvShape, width: usize) -> Vec<Run> {
        let ([kh, kw], cin) = (shape.kernel, shape.channels_in);
        (0..cin)
            .flat_map(|c| (0..kh).map(move |ki| (c, ki)))
            .map(|(c, ki)| Run {
                input: (c * self.rows + ki) * self.width,
                weight: (ki * kw * cin + c) * width,
                len: kw,
            })
            .collect()
    }

    /// Copies the padded rows that output rows from `first_out_row` on read, zeros in the
    /// padding (and past the image's last row, for a last, shorter task).
    fn copy(&self, image: &[f32], shape: &ConvShape, first_out_row: usize, band: &mut [f32]) {
        let ([h, w], [ph, pw]) = (shape.input, shape.padding);
        let first = first_out_row * shape.stride[0];
        for (plane, band) in image
            .chunks(h * w)
            .zip(band.chunks_mut(self.rows * self.width))
        {
            for (r, row) in band.chunks_mut(self.width).enumerate() {
                match (first + r).checked_sub(ph).filter(|&y| y < h) {
                    Some(y) => {
                        row[..pw].fill(0.0);
                        row[pw..pw + w].copy_from_slice(&plane[y * w..][..w]);
                        row[pw + w..].fill(0.0);
                    }
                    None => row.fill(0.0),
                }
            }
        }
    }
}

/// Whether [`strided_weight_grad`] computes `shape`'s weight gradient: a stride above 1 (any
/// padding), output maps up to `STRIDED_MAX_WIDTH` wide, on a CPU with AVX-512 or AVX2.
pub fn takes_strided_weight_grad(shape: &ConvShape) -> bool {
    shape.stride != [1, 1] && shape.output[1] <= STRIDED_MAX_WIDTH && Isa::best().is_some()
}

/// The widest output map [`strided_weight_grad`] takes. conv1's weight gradient on an AMD EPYC
/// Zen 4, against im2col + GEMM: 3.9-5.2 against 6.5-8.8 ms at 96 px (22x22 outputs, batch
/// 32), but 27-31 against 23-26 ms at 224 px (54x54), where the GEMM amortises im2col's copies
/// and the output gradient's channels-last copy (48 MB) costs more.
const STRIDED_MAX_WIDTH: usize = 32;

/// The weight gradient `[Cout, Cin, kh, kw]` and the bias gradient `[Cout]` of a layer of any
/// stride (conv1: one input channel, 11x11, stride 4), without an input gradient. Each kernel
/// row's taps and input channels, `kw * Cin` values side by side in a zero-padded
/// channels-last copy of the input, are the tile's rows, and its runs go along output rows:
/// im2col + GEMM spent more on copying every input pixel into about eight columns, twice
/// (forward and backward), than on the products.
pub fn strided_weight_grad(x: &[f32], dy: &[f32], shape: &ConvShape) -> (Vec<f32>, Vec<f32>) {
    strided_weight_grad_on(isa(), x, dy, shape)
}

fn strided_weight_grad_on(
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    shape: &ConvShape,
) -> (Vec<f32>, Vec<f32>) {
    let ([kh, kw], [oh, ow]) = (shape.kernel, shape.output);
    let (cin, cout) = (shape.channels_in, shape.channels_out);
    let panels = Panels::new(isa, cout);
    let operands = StridedOperands {
        shape,
        panels,
        x_padded: padded_channels_last(x, shape),
        dy_panels: panels_last(dy, oh * ow, panels),
    };
    let sums_len = cout * kh * kw * cin;
    // One image per task; each thread sums its images.
    let per_thread = shape.batch.div_ceil(rayon::current_num_threads());
    let by_row = (0..shape.batch)
        .into_par_iter()
        .with_min_len(per_thread)
        .fold(
            || (vec![0.0; sums_len], Vec::new()),
            |(mut sums, mut runs), image| {
                operands.add_image(image, &mut sums, &mut runs);
                (sums, runs)
            },
        )
        .map(|(sums, _)| sums)
        .reduce(
            || vec![0.0; sums_len],
            |mut total, part| {
                total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
                total
            },
        );
    let row_len = kw * cin;
    let mut weight = vec![0.0; sums_len];
    for (co, rows) in by_row.chunks(kh * row_len).enumerate() {
        for (di, row) in rows.chunks(row_len).enumerate() {
            for (j, value) in row.iter().enumerate() {
                let (dj, ci) = (j / cin, j % cin);
                weight[((co * cin + ci) * kh + di) * kw + dj] = *value;
            }
        }
    }
    (weight, bias_grad(dy, cout, oh * ow))
}

/// The operands of [`strided_weight_grad`]: the zero-padded channels-last input and the
/// output gradient by panels (see [`panels_last`]).
struct StridedOperands<'a> {
    shape: &'a ConvShape,
    panels: Panels,
    x_padded: Vec<f32>,
    dy_panels: Scratch,
}

impl StridedOperands<'_> {
    /// Adds image `image`'s products to `sums` (`[Cout][kh][kw * Cin]`): for each panel and
    /// kernel row, tiles of `TILE_ROWS` (tap, channel) pairs of the row. The image's output
    /// gradient (124 KB per panel at 96 px) stays in the cache through all of them.
    fn add_image(&self, image: usize, sums: &mut [f32], runs: &mut Vec<Run>) {
        let (shape, panels) = (self.shape, self.panels);
        let ([kh, kw], [oh, ow], cin) = (shape.kernel, shape.output, shape.channels_in);
        let [hp, wp] = [0, 1].map(|axis| shape.input[axis] + 2 * shape.padding[axis]);
        let row_len = kw * cin;
        let x_image = &self.x_padded[image * hp * wp * cin..][..hp * wp * cin];
        let mut tile_sums = [0.0; TILE_ROWS * full_panel(Isa::Avx512)];
        let dy_len = oh * ow * panels.full;
        for panel in 0..panels.count {
            let dy_image = &self.dy_panels[(panel * shape.batch + image) * dy_len..][..dy_len];
            let dy_side = Side {
                values: dy_image,
                row_stride: 0,
                step: panels.full,
            };
            let target = Target {
                row_stride: panels.full,
                lane_stride: 1,
                lanes: panels.lanes(panel),
                room: tile_sums.len(),
            };
            for di in 0..kh {
                image_row_runs(shape, di, panels.full, runs);
                for first in (0..row_len).step_by(TILE_ROWS) {
                    let rows = TILE_ROWS.min(row_len - first);
                    let x_side = Side {
                        values: &x_image[first..],
                        row_stride: 1,
                        step: shape.stride[1] * cin,
                    };
                    let tile_shape = [rows, panels.width(panel)];
                    let at = tile_sums.as_mut_ptr();
                    // SAFETY: the tile writes inside `tile_sums` (`room`).
                    unsafe { tile(panels.isa, tile_shape, runs, x_side, dy_side, (at, target)) };
                    for lane in 0..target.lanes {
                        let co = panels.start(panel) + lane;
                        let row = &mut sums[(co * kh + di) * row_len + first..][..rows];
                        for (r, sum) in row.iter_mut().enumerate() {
                            *sum += tile_sums[r * panels.full + lane];
                        }
                    }
                }
            }
        }
    }
}

/// The runs of kernel row `di` over one image: one per output row, along it, from the first
/// column's input pixel in the padded channels-last image and the first output pixel of the
/// row in a panel of the output gradient (`full` values per pixel).
fn image_row_runs(shape: &ConvShape, di: usize, full: usize, out: &mut Vec<Run>) {
    let wp = shape.input[1] + 2 * shape.padding[1];
    let [oh, ow] = shape.output;
    out.clear();
    out.extend((0..oh).map(|oy| Run {
        input: (oy * shape.stride[0] + di) * wp * shape.channels_in,
        weight: oy * ow * full,
        len: ow,
    }));
}

/// `[B, C, H, W]` as `[B, H + 2 ph, W + 2 pw, C]`: channels last, in a border of zeros as wide
/// as the padding.
fn padded_channels_last(x: &[f32], shape: &ConvShape) -> Vec<f32> {
    let ([h, w], [ph, pw], cin) = (shape.input, shape.padding, shape.channels_in);
    let [hp, wp] = [h + 2 * ph, w + 2 * pw];
    let mut padded = vec![0.0; shape.batch * hp * wp * cin];
    padded
        .par_chunks_mut(hp * wp * cin)
        .zip(x.par_chunks(cin * h * w))
        .for_each(|(dst, image)| {
            for (c, plane) in image.chunks(h * w).enumerate() {
                for (y, row) in plane.chunks(w).enumerate() {
                    for (col, value) in row.iter().enumerate() {
                        dst[((y + ph) * wp + col + pw) * cin + c] = *value;
                    }
                }
            }
        });
    padded
}

/// The bias gradient: the output gradient summed over the images and pixels of each channel.
fn bias_grad(dy: &[f32], channels: usize, pixels: usize) -> Vec<f32> {
    let mut bias = vec![0.0; channels];
    for image in dy.chunks(channels * pixels) {
        for (sum, plane) in bias.iter_mut().zip(image.chunks(pixels)) {
            *sum += plane.iter().sum::<f32>();
        }
    }
    bias
}

/// Where the packed convolution's weight (output channel, input channel, kernel tap) lies in
/// the layer's `[Cout, Cin, kh, kw]` weight: `out_stride` and `in_stride` apart, its taps in
/// order or turned half round (`flipped`, for the transposed convolution).
#[derive(Clone, Copy, Debug)]
struct Source {
    out_stride: usize,
    in_stride: usize,
    flipped: bool,
}

/// The weight as `panels`, each `[kh][kw][Cin][width]` (zero past the last channel) and
/// [`panel_len`] apart.
fn pack(weight: &[f32], source: Source, shape: &ConvShape, panels: Panels) -> Scratch {
    let taps = shape.kernel[0] * shape.kernel[1];
    let cin = shape.channels_in;
    let panel_len = panel_len(shape, panels);
    // A kept buffer: 5 MB of fresh zeroed memory (conv4's weights) cost a page fault per page.
    let mut packed = Scratch::new(panels.count * panel_len);
    packed[..panels.count * panel_len]
        .par_chunks_mut(panel_len)
        .enumerate()
        .for_each(|(panel, values)| {
            let (first, width) = (panels.start(panel), panels.width(panel));
            let used = panels.lanes(panel);
            // One input channel at a time, so that the source's cache lines serve all its taps.
            for ci in 0..cin {
                for tap in 0..taps {
                    let row = &mut values[(tap * cin + ci) * width..][..width];
                    let from = match source.flipped {
                        true => taps - 1 - tap,
                        false => tap,
                    };
                    let start = first * source.out_stride + ci * source.in_stride + from;
                    let column = weight[start..].iter().step_by(source.out_stride);
                    for (to, value) in row[..used].iter_mut().zip(column) {
                        *to = *value;
                    }
                    row[used..].fill(0.0);
                }
            }
        });
    packed
}

/// The distance between two panels of packed weights.
fn panel_len(shape: &ConvShape, panels: Panels) -> usize {
    shape.kernel[0] * shape.kernel[1] * shape.channels_in * panels.full
}

/// One run of products the tile sums: `len` steps from offset `input` of the broadcast side
/// and `weight` of the vector side (in the forward pass, one kernel row's taps inside the
/// image for one output pixel).
#[derive(Clone, Copy, Debug)]
struct Run {
    input: usize,
    weight: usize,
    len: usize,
}

/// Where the tile's sums land, from its start: row `i`, lane `l` (an output channel) at
/// `i * row_stride + l * lane_stride`, only the first `lanes` lanes, all within `room` values.
/// Scattered straight into the layer's layout (`[B, Cout, OH, OW]`, or the weight gradient's
/// `[Cout, Cin, kh, kw]`): a tile stores 24 vectors against thousands of FMAs, where a
/// channels-last result and a transpose pass cost up to 1.8 ms per call.
#[derive(Clone, Copy, Debug)]
struct Target {
    row_stride: usize,
    lane_stride: usize,
    lanes: usize,
    room: usize,
}

/// An operand of the tile: its values, the distance between tile rows (broadcast side only)
/// and between consecutive steps of a run.
#[derive(Clone, Copy, Debug)]
struct Side<'a> {
    values: &'a [f32],
    row_stride: usize,
    step: usize,
}

/// The runs of output pixel `(oy, ox)` in a panel `width` channels wide over a block of
/// `images` (see [`image_blocks_last`]): one per kernel row that lies inside the image.
fn runs(shape: &ConvShape, [oy, ox]: [usize; 2], [width, images]: [usize; 2], out: &mut Vec<Run>) {
    let ([h, w], [kh, kw], [ph, pw]) = (shape.input, shape.kernel, shape.padding);
    let cin = shape.channels_in;
    let inside =
        |o: usize, size: usize, k: usize, p: usize| p.saturating_sub(o)..k.min(size + p - o);
    let (rows, cols) = (inside(oy, h, kh, ph), inside(ox, w, kw, pw));
    out.clear();
    if cols.is_empty() {
        return;
    }
    out.extend(rows.map(|di| Run {
        input: ((oy + di - ph) * w + ox + cols.start - pw) * cin * images,
        weight: (di * kw + cols.start) * cin * width,
        len: cols.len() * cin,
    }));
}

/// The convolution of `x` with packed weights: tasks of (weight panel, block of up to
/// `TILE_ROWS` images, up to `PIXELS_PER_TASK` output pixels), each running the tile over its
/// pixels and scattering the sums into the `[B, Cout, OH, OW]` output.
fn convolve(
    x: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    shape: &ConvShape,
    panels: Panels,
) -> Vec<f32> {
    let [in_pixels, out_pixels] = [shape.input, shape.output].map(|[h, w]| h * w);
    let (cin, cout) = (shape.channels_in, shape.channels_out);
    let image_len = in_pixels * cin;
    let blocks = shape.batch.div_ceil(TILE_ROWS);
    let x_blocks = image_blocks_last(x, cin, in_pixels, blocks);
    let panel_len = panel_len(shape, panels);
    let mut y = vec![0.0; shape.batch * cout * out_pixels];
    let (out, y_len) = (Output(y.as_mut_ptr()), y.len());
    let chunks = out_pixels.div_ceil(PIXELS_PER_TASK);
    (0..panels.count * blocks * chunks)
        .into_par_iter()
        .for_each_init(Vec::new, |pixel_runs, task| {
            let (panel, block) = (task / (blocks * chunks), task / chunks % blocks);
            let chunk = task % chunks;
            let pixels = chunk * out_pixels / chunks..(chunk + 1) * out_pixels / chunks;
            let (first, images) = image_block(shape.batch, blocks, block);
            let width = panels.width(panel);
            let weights = &packed[panel * panel_len..][..panel_len];
            let x_side = Side {
                values: &x_blocks[first * image_len..][..images * image_len],
                row_stride: 1,
                step: images,
            };
            let w_side = Side {
                values: weights,
                row_stride: 0,
                step: width,
            };
            for pixel in pixels {
                let [oy, ox] = [pixel / shape.output[1], pixel % shape.output[1]];
                runs(shape, [oy, ox], [width, images], pixel_runs);
                let offset = (first * cout + panels.start(panel)) * out_pixels + pixel;
                let target = Target {
                    row_stride: cout * out_pixels,
                    lane_stride: out_pixels,
                    lanes: panels.lanes(panel),
                    room: y_len - offset,
                };
                // SAFETY: the tile writes this pixel of the task's images and output channels,
                // inside `y` (`room`).
                unsafe {
                    tile(
                        panels.isa,
                        [images, width],
                        pixel_runs,
                        x_side,
                        w_side,
                        (out.at(offset), target),
                    )
                };
            }
        });
    if let Some(bias) = bias {
        y.par_chunks_mut(cout * out_pixels).for_each(|image| {
            for (plane, b) in image.chunks_mut(out_pixels).zip(bias) {
                plane.iter_mut().for_each(|value| *value += b);
            }
        });
    }
    y
}

/// Output pixels per task at most. Tasks of whole maps were too coarse to share evenly between
/// the cores: conv2's input gradient at 96 px has a 64- and a 32-channel panel, 12 tasks of two
/// sizes, and ran 5-10% faster in 48.
const PIXELS_PER_TASK: usize = 25;

/// The first image and the number of images of block `index` of `blocks`: consecutive images
/// that share the batch evenly (sizes differ by at most one), so that no tile is left with a
/// few images.
fn image_block(batch: usize, blocks: usize, index: usize) -> (usize, usize) {
    let first = index * batch / blocks;
    (first, (index + 1) * batch / blocks - first)
}

/// `[B, C, P]` as `[panel][B][P][full]` for `panels` of the `C` channels: each panel's channels
/// of a pixel side by side, zero past the last channel. A tile's run then reads one panel's
/// pixels one after another, rather than a slice of every pixel's `C` values.
fn panels_last(values: &[f32], pixels: usize, panels: Panels) -> Scratch {
    let (channels, full) = (panels.channels, panels.full);
    let batch = values.len() / (channels * pixels);
    let len = panels.count * batch * pixels * full;
    let mut last = Scratch::new(len);
    last[..len]
        .par_chunks_mut(pixels * full)
        .enumerate()
        .for_each(|(index, dst)| {
            let (panel, image) = (index / batch, index % batch);
            let lanes = panels.lanes(panel);
            let src = &values[(image * channels + panels.start(panel)) * pixels..];
            for (lane, plane) in src[..lanes * pixels].chunks(pixels).enumerate() {
                for (p, value) in plane.iter().enumerate() {
                    dst[p * full + lane] = *value;
                }
            }
            if lanes < full {
                dst.chunks_mut(full)
                    .for_each(|pixel| pixel[lanes..].fill(0.0));
            }
        });
    last
}

/// `[B, C, P]` as `blocks` blocks of images (see [`image_block`]), each `[P][C][images]`: the
/// block's values of one (pixel, channel) side by side, so that the tile's rows read one cache
/// line rather than one per image (conv2-5 at 96 px 1-3% faster).
fn image_blocks_last(x: &[f32], channels: usize, pixels: usize, blocks: usize) -> Scratch {
    let image_len = channels * pixels;
    let batch = x.len() / image_len;
    let mut last = Scratch::new(x.len());
    let mut parts = Vec::with_capacity(blocks);
    let mut rest = &mut last[..x.len()];
    for block in 0..blocks {
        let (first, images) = image_block(batch, blocks, block);
        let (part, tail) = rest.split_at_mut(images * image_len);
        parts.push((first, images, part));
        rest = tail;
    }
    parts.into_par_iter().for_each(|(first, images, dst)| {
        let block = &x[first * image_len..][..images * image_len];
        for (i, image) in block.chunks(image_len).enumerate() {
            for (c, plane) in image.chunks(pixels).enumerate() {
                for (p, value) in plane.iter().enumerate() {
                    dst[(p * channels + c) * images + i] = *value;
                }
            }
        }
    });
    last
}

/// `[B, C, P]` as `[B, P, C]`: each pixel's channels side by side.
fn channels_last(x: &[f32], channels: usize, pixels: usize) -> Scratch {
    let mut last = Scratch::new(x.len());
    last[..x.len()]
        .par_chunks_mut(pixels * channels)
        .zip(x.par_chunks(channels * pixels))
        .for_each(|(dst, src)| {
            for (c, plane) in src.chunks(pixels).enumerate() {
                for (p, value) in plane.iter().enumerate() {
                    dst[p * channels + c] = *value;
                }
            }
        });
    last
}

/// `y[i, 0..width] = Σ runs Σ steps s  x[run.input + i * row_stride + s * step] ·
/// w[run.weight + s * step..][..width]` for the `rows` rows `i`, written to `y` as its
/// [`Target`] says.
///
/// # Panics
/// If a run reaches past either operand, or the target past its room.
///
/// # Safety
/// `y` points to `target.room` values that no other thread touches meanwhile; the CPU has
/// `isa`.
unsafe fn tile(
    isa: Isa,
    [rows, width]: [usize; 2],
    runs: &[Run],
    x: Side,
    w: Side,
    (y, target): (*mut f32, Target),
) {
    let end = |start: usize, run: &Run, step: usize| start + run.len.saturating_sub(1) * step;
    assert!(runs.iter().all(|run| {
        end(run.input, run, x.step) + (rows - 1) * x.row_stride < x.values.len()
            && end(run.weight, run, w.step) + width <= w.values.len()
    }));
    let lanes = target.lanes.min(width);
    assert!(
        lanes > 0
            && (rows - 1) * target.row_stride + (lanes - 1) * target.lane_stride < target.room
    );
    // The scatter's lane offsets are 32-bit.
    assert!(16 * target.lane_stride < i32::MAX as usize);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: every run lies inside both operands and the target inside its room (checked
    // above); `y` and the CPU are the caller's.
    unsafe {
        let args = (
            runs,
            (x.values.as_ptr(), [x.row_stride, x.step]),
            (w.values.as_ptr(), w.step),
            (y, Target { lanes, ..target }),
        );
        // One tile per (rows, vectors), each compiled with its accumulators in registers.
        macro_rules! by_rows {
            ($isa:ident, $vectors:literal, [$($rows:literal),*]) => {
                match rows {
                    $($rows => $isa::tile::<$rows, $vectors>(args),)*
                    rows => unreachable!("no tile for {rows} rows"),
                }
            };
        }
        match (isa, width / vector_lanes(isa)) {
            (Isa::Avx512, 4) => by_rows!(avx512, 4, [6, 5, 4, 3, 2, 1]),
            (Isa::Avx512, 2) => by_rows!(avx512, 2, [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]),
            (Isa::Avx512, 1) => by_rows!(avx512, 1, [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]),
            (Isa::Avx2, 2) => by_rows!(avx2, 2, [6, 5, 4, 3, 2, 1]),
            (Isa::Avx2, 1) => by_rows!(avx2, 1, [6, 5, 4, 3, 2, 1]),
            (isa, vectors) => unreachable!("no {isa:?} tile of {vectors} vectors"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, rows, width, runs, x, w, y, target);
        unreachable!("the direct convolution needs AVX-512 or AVX2 (`applies`)");
    }
}

/// The runs; the broadcast side with its row stride and step; the vector side with its step;
/// the output and where in it the sums land.
#[cfg(target_arch = "x86_64")]
type TileArgs<'a> = (
    &'a [Run],
    (*const f32, [usize; 2]),
    (*const f32, usize),
    (*mut f32, Target),
);

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::TileArgs;

    /// The tile of `R` rows and `V` 16-lane vectors of output channels (see `super::tile`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile<const R: usize, const V: usize>(
        (runs, (x, [x_stride, x_step]), (w, w_step), (y, target)): TileArgs,
    ) {
        let mut sums = [[_mm512_setzero_ps(); V]; R];
        for run in runs {
            // SAFETY: the caller keeps every run inside both operands.
            unsafe {
                let (x, w) = (x.add(run.input), w.add(run.weight));
                for p in 0..run.len {
                    let row = w.add(p * w_step);
                    let w: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(row.add(16 * v)));
                    for (i, sums) in sums.iter_mut().enumerate() {
                        let a = _mm512_set1_ps(*x.add(i * x_stride + p * x_step));
                        for (sum, w) in sums.iter_mut().zip(w) {
                            *sum = _mm512_fmadd_ps(a, w, *sum);
                        }
                    }
                }
            }
        }
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let offsets = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(target.lane_stride as i32));
        for (i, sums) in sums.iter().enumerate() {
            for (v, sum) in sums.iter().enumerate() {
                let left = target.lanes.saturating_sub(16 * v).min(16);
                if left == 0 {
                    break;
                }
                let mask = (u32::MAX >> (32 - left)) as __mmask16;
                let at = (i * target.row_stride + 16 * v * target.lane_stride) as isize;
                // SAFETY: the caller keeps the first `target.lanes` lanes of the R rows inside
                // the output.
                unsafe {
                    _mm512_mask_i32scatter_ps::<4>(y.wrapping_offset(at), mask, offsets, *sum)
                };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::TileArgs;

    /// The tile of `R` rows and `V` 8-lane vectors of output channels (see `super::tile`).
    /// AVX2 has no scatter: each vector's real lanes are stored one by one (eight stores
    /// against hundreds of FMAs per tile).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile<const R: usize, const V: usize>(
        (runs, (x, [x_stride, x_step]), (w, w_step), (y, target)): TileArgs,
    ) {
        let mut sums = [[_mm256_setzero_ps(); V]; R];
        for run in runs {
            // SAFETY: the caller keeps every run inside both operands.
            unsafe {
                let (x, w) = (x.add(run.input), w.add(run.weight));
                for p in 0..run.len {
                    let row = w.add(p * w_step);
                    let w: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(row.add(8 * v)));
                    for (i, sums) in sums.iter_mut().enumerate() {
                        let a = _mm256_set1_ps(*x.add(i * x_stride + p * x_step));
                        for (sum, w) in sums.iter_mut().zip(w) {
                            *sum = _mm256_fmadd_ps(a, w, *sum);
                        }
                    }
                }
            }
        }
        let mut lanes = [0.0; 8];
        for (i, sums) in sums.iter().enumerate() {
            for (v, sum) in sums.iter().enumerate() {
                let left = target.lanes.saturating_sub(8 * v).min(8);
                // SAFETY: `lanes` holds eight values.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *sum) };
                let at = i * target.row_stride + 8 * v * target.lane_stride;
                for (lane, value) in lanes[..left].iter().enumerate() {
                    // SAFETY: the caller keeps the first `target.lanes` lanes of the R rows
                    // inside the output.
                    unsafe { *y.add(at + lane * target.lane_stride) = *value };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im2col::{self, Gradients};
    use crate::{max_difference, noise};

    fn shape(
        batch: usize,
        channels: [usize; 2],
        input: [usize; 2],
        k: [usize; 2],
        p: [usize; 2],
    ) -> ConvShape {
        crate::conv_shape(batch, channels, input, k, p, [1, 1])
    }

    /// Forward pass and gradients against im2col + GEMM, which multiplies every tap, on every
    /// instruction set this CPU has: full and half panels with real and padding lanes (70 and
    /// 130 channels), partial image blocks, a non-square kernel with asymmetric padding, a map
    /// smaller than the kernel.
    #[test]
    fn matches_im2col_on_small_maps_and_odd_shapes() {
        for (isa, s) in on_every_isa([
            shape(32, [16, 70], [10, 10], [5, 5], [2, 2]),
            shape(7, [24, 64], [4, 4], [3, 3], [1, 1]),
            shape(13, [5, 130], [6, 3], [3, 2], [2, 0]),
            shape(6, [3, 8], [2, 2], [3, 3], [1, 1]),
        ]) {
            assert!(applies(&s), "{s:?}");
            let x = noise(s.batch * s.channels_in * s.input[0] * s.input[1], 1);
            let w = noise(s.weight_len(), 2);
            let b = noise(s.channels_out, 3);
            let y = forward_on(isa, &x, &w, Some(&b), &s);
            let expected = im2col::forward(&x, &w, Some(&b), &s);
            assert!(
                max_difference(&y, &expected) < 1e-4,
                "{isa:?} forward {s:?}"
            );
            let dy = noise(expected.len(), 4);
            let expected = im2col::backward(&x, &w, &dy, &s, true);
            let dx = input_grad_on(isa, &dy, &w, &s);
            assert!(
                max_difference(&dx, expected.x.as_ref().unwrap()) < 1e-4,
                "{isa:?} input gradient {s:?}"
            );
            let label = format!("{isa:?} {s:?}");
            assert_weight_grads(weight_grad_on(isa, &x, &dy, &s), &expected, &label);
        }
    }

    /// Every shape on every instruction set this CPU has (none, where it has neither).
    fn on_every_isa<const N: usize>(shapes: [ConvShape; N]) -> Vec<(Isa, ConvShape)> {
        let sets: Vec<Isa> = Isa::ALL.into_iter().filter(|isa| isa.detected()).collect();
        if sets.is_empty() {
            eprintln!("no AVX-512 or AVX2 on this CPU: the direct convolution is not used here");
        }
        sets.into_iter()
            .flat_map(|isa| shapes.map(|s| (isa, s)))
            .collect()
    }

    /// The weight and bias gradients within float rounding of `expected`'s.
    fn assert_weight_grads((dw, db): (Vec<f32>, Vec<f32>), expected: &Gradients, label: &str) {
        let weight = max_difference(&dw, &expected.weight);
        assert!(weight < 1e-3, "weight gradient {label}: {weight}");
        let bias = max_difference(&db, &expected.bias);
        assert!(bias < 1e-3, "bias gradient {label}: {bias}");
    }

    /// The strided weight gradient against im2col + GEMM: conv1's shape at a smaller size,
    /// strides that differ between the axes, kernel rows of several channels whose tiles cross
    /// from one channel to the next (8 channels, 5 taps: rows of 40 in blocks of 6).
    #[test]
    fn strided_weight_gradient_matches_im2col() {
        for (isa, s) in on_every_isa([
            strided(8, [1, 96], [35, 35], [11, 11], [4, 4], [1, 1]),
            strided(7, [3, 20], [9, 8], [3, 2], [2, 3], [1, 0]),
            strided(3, [8, 70], [11, 11], [5, 5], [2, 2], [2, 2]),
        ]) {
            assert!(takes_strided_weight_grad(&s), "{s:?}");
            let x = noise(s.batch * s.channels_in * s.input[0] * s.input[1], 5);
            let w = noise(s.weight_len(), 6);
            let dy = noise(s.batch * s.channels_out * s.output[0] * s.output[1], 7);
            let expected = im2col::backward(&x, &w, &dy, &s, false);
            let label = format!("{isa:?} {s:?}");
            assert_weight_grads(strided_weight_grad_on(isa, &x, &dy, &s), &expected, &label);
        }
    }

    /// The strided forward pass against im2col + GEMM: both of conv1's shapes at a smaller
    /// size (full and narrow panels), with more output rows than one task takes (and a shorter
    /// last task), strides and paddings that differ between the axes, and the last, half panel
    /// of 70 output channels in full and narrow panels.
    #[test]
    fn strided_forward_matches_im2col() {
        for (isa, s) in on_every_isa([
            strided(2, [1, 96], [47, 47], [11, 11], [4, 4], [1, 1]),
            strided(3, [3, 64], [51, 43], [11, 11], [4, 4], [2, 2]),
            strided(2, [3, 70], [9, 8], [3, 2], [2, 3], [1, 0]),
            strided(2, [3, 70], [19, 18], [11, 10], [2, 3], [1, 0]),
            strided(1, [2, 16], [40, 7], [5, 3], [2, 2], [3, 1]),
            // Bottom and right paddings wider than the top and left ones, as Burn allows.
            ConvShape {
                output: [13, 5],
                ..strided(2, [3, 8], [40, 7], [5, 3], [3, 2], [0, 1])
            },
        ]) {
            assert!(takes_strided_forward(&s), "{s:?}");
            let x = noise(s.batch * s.channels_in * s.input[0] * s.input[1], 8);
            let w = noise(s.weight_len(), 9);
            let b = noise(s.channels_out, 10);
            let y = strided_forward_on(isa, &x, &w, Some(&b), &s);
            let expected = im2col::forward(&x, &w, Some(&b), &s);
            let difference = max_difference(&y, &expected);
            assert!(difference < 1e-4, "{isa:?} {s:?}: {difference}");
        }
    }

    fn strided(
        batch: usize,
        channels: [usize; 2],
        input: [usize; 2],
        k: [usize; 2],
        stride: [usize; 2],
        p: [usize; 2],
    ) -> ConvShape {
        crate::conv_shape(batch, channels, input, k, p, stride)
    }

    #[test]
    fn takes_only_stride_one_full_tiles_and_narrow_padding() {
        let s = shape(32, [16, 70], [10, 10], [5, 5], [2, 2]);
        assert_eq!(applies(&s), Isa::best().is_some());
        assert!(!applies(&ConvShape {
            batch: TILE_ROWS - 1,
            ..s
        }));
        assert!(!applies(&ConvShape {
            stride: [2, 1],
            ..s
        }));
        assert!(!applies(&ConvShape {
            padding: [5, 2],
            ..s
        }));
        let conv1 = |size| strided(32, [1, 96], [size, size], [11, 11], [4, 4], [1, 1]);
        assert_eq!(takes_strided_weight_grad(&conv1(96)), Isa::best().is_some());
        assert!(!takes_strided_weight_grad(&conv1(224)), "54x54 outputs");
        assert!(!takes_strided_weight_grad(&s), "stride 1");
    }
}
