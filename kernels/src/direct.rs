//! Direct convolution for stride-1 layers on maps too small for Winograd (conv2 to conv5 at 96
//! px), with AVX-512: the forward pass, the input gradient (the forward pass of the transposed
//! convolution) and the weight gradient.
//!
//! Why not im2col + GEMM there: the column matrix holds the padding too, and the GEMM
//! multiplies it. A 5x5 kernel with padding 2 on a 10x10 map reads the padding in 23% of its
//! products, a 3x3 kernel on a 4x4 map in 31%; PyTorch's oneDNN skips them (its direct
//! convolution) and was 1.5x faster at these layers on an AMD EPYC Zen 4, although the `gemm`
//! crate runs at 94% of the core's peak there. Here one register tile computes one output pixel
//! of up to six images for 64 output channels and sums over only the kernel taps that fall
//! inside the image. Inside one kernel row those taps read neighbouring pixels, which a
//! channels-last copy of the input stores side by side, and the packed weights are stored in
//! the same (kernel row, kernel column, channel) order: each kernel row is one contiguous run
//! of products on both sides. The weight gradient runs the same tile over (input channel,
//! output channel) for one kernel tap, summing over the output pixels whose tap lies inside.

use rayon::prelude::*;

use crate::im2col::ConvShape;
use crate::scratch::Scratch;
use crate::small_gemm::Output;

/// Rows of the register tile (images; input channels in the weight gradient): six rows of four
/// vectors keep 24 accumulators in registers.
const TILE_ROWS: usize = 6;
/// Output channels per register tile and per packed weight panel: four 16-lane vectors. The
/// last panel has two vectors when no more channels are left (conv2's input gradient has 96).
const CHANNELS: usize = 64;

/// Output channels in weight panel `panel` of `channels`: `CHANNELS`, or half as many for a
/// last panel that needs no more.
fn panel_width(channels: usize, panel: usize) -> usize {
    match channels - panel * CHANNELS {
        left if left <= CHANNELS / 2 => CHANNELS / 2,
        _ => CHANNELS,
    }
}

/// Whether this module computes `shape`'s forward pass and gradients: stride 1, a
/// padding narrower than the kernel (so that the transposed convolution has a padding too),
/// enough images to fill a tile, and a CPU with AVX-512.
pub fn applies(shape: &ConvShape) -> bool {
    shape.stride == [1, 1]
        && shape.batch >= TILE_ROWS
        && (0..2).all(|axis| shape.padding[axis] < shape.kernel[axis])
        && has_avx512()
}

fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `y = x * weight + bias` for `x [B, Cin, H, W]` and `weight [Cout, Cin, kh, kw]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    let taps = shape.kernel[0] * shape.kernel[1];
    let source = Source {
        out_stride: shape.channels_in * taps,
        in_stride: taps,
        flipped: false,
    };
    let packed = pack(weight, source, shape);
    convolve(x, &packed, bias, shape)
}

/// The input gradient `dx [B, Cin, H, W]` for the output gradient `dy [B, Cout, OH, OW]`: the
/// convolution of `dy` with the weight turned half round and its channels swapped, padded by
/// `kernel - 1 - padding`.
pub fn input_grad(dy: &[f32], weight: &[f32], shape: &ConvShape) -> Vec<f32> {
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
    let packed = pack(weight, source, &transposed);
    convolve(dy, &packed, None, &transposed)
}

/// The weight gradient `[Cout, Cin, kh, kw]` and the bias gradient `[Cout]` for the output
/// gradient `dy [B, Cout, OH, OW]`. Each kernel tap's gradient sums, over the output pixels
/// whose tap lies inside the image, the input pixel it reads times the output gradient: tasks
/// of (output-channel panel, tap, block of `TILE_ROWS` input channels), the tile's rows input
/// channels and its vectors output channels, its runs one per output pixel over the batch.
pub fn weight_grad(x: &[f32], dy: &[f32], shape: &ConvShape) -> (Vec<f32>, Vec<f32>) {
    let [in_pixels, out_pixels] = [shape.input, shape.output].map(|[h, w]| h * w);
    let (cin, cout) = (shape.channels_in, shape.channels_out);
    let taps = shape.kernel[0] * shape.kernel[1];
    let panels = cout.div_ceil(CHANNELS);
    let pixel_len = panels * CHANNELS;
    let x_last = channels_last(x, cin, in_pixels, cin);
    let dy_last = channels_last(dy, cout, out_pixels, pixel_len);
    let dy_last = &dy_last[..shape.batch * out_pixels * pixel_len];
    let mut weight = vec![0.0; cout * cin * taps];
    let out = Output(weight.as_mut_ptr());
    let blocks = cin.div_ceil(TILE_ROWS);
    (0..panels * taps * blocks)
        .into_par_iter()
        .for_each_init(Vec::new, |runs, task| {
            let (panel, tap) = (task / (taps * blocks), task / blocks % taps);
            let first = task % blocks * TILE_ROWS;
            let kernel_width = shape.kernel[1];
            tap_runs(
                shape,
                [tap / kernel_width, tap % kernel_width],
                pixel_len,
                runs,
            );
            let x_side = Side {
                values: &x_last[first..x.len()],
                row_stride: 1,
                step: in_pixels * cin,
            };
            let dy_side = Side {
                values: &dy_last[panel * CHANNELS..],
                row_stride: 0,
                step: out_pixels * pixel_len,
            };
            let rows = TILE_ROWS.min(cin - first);
            // The weight's `[Cout, Cin, kh, kw]` layout: rows are input channels, lanes output
            // channels.
            let offset = (panel * CHANNELS * cin + first) * taps + tap;
            let target = Target {
                row_stride: taps,
                lane_stride: cin * taps,
                lanes: (cout - panel * CHANNELS).min(CHANNELS),
                room: cout * cin * taps - offset,
            };
            // SAFETY: the tile writes this task's own (tap, input channels, output channels)
            // weights, inside `weight` (`room`).
            unsafe {
                tile(
                    [rows, panel_width(cout, panel)],
                    runs,
                    x_side,
                    dy_side,
                    (out.at(offset), target),
                )
            };
        });
    (weight, bias_grad(dy, cout, out_pixels))
}

/// The runs of kernel tap `(di, dj)`: one per output pixel whose tap lies inside the image,
/// over the batch (offsets of the first image's pixel in the channels-last input and in the
/// output gradient's `pixel_len`-long pixels). Runs over the batch rather than along output
/// rows: a 4x4 map's rows hold three or four of a 3x3 kernel's taps, too few products per run.
fn tap_runs(shape: &ConvShape, [di, dj]: [usize; 2], pixel_len: usize, out: &mut Vec<Run>) {
    let ([h, w], [oh, ow], [ph, pw]) = (shape.input, shape.output, shape.padding);
    let inside = |d: usize, size: usize, p: usize, outputs: usize| {
        p.saturating_sub(d)..(size + p).saturating_sub(d).min(outputs)
    };
    let (rows, cols) = (inside(di, h, ph, oh), inside(dj, w, pw, ow));
    out.clear();
    for oy in rows {
        out.extend(cols.clone().map(|ox| Run {
            input: ((oy + di - ph) * w + ox + dj - pw) * shape.channels_in,
            weight: (oy * ow + ox) * pixel_len,
            len: shape.batch,
        }));
    }
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

/// The weight as panels of output channels (see [`panel_width`]), each `[kh][kw][Cin][width]`
/// (zero past the last channel) and [`panel_len`] apart.
fn pack(weight: &[f32], source: Source, shape: &ConvShape) -> Scratch {
    let taps = shape.kernel[0] * shape.kernel[1];
    let (cin, cout) = (shape.channels_in, shape.channels_out);
    let panel_len = panel_len(shape);
    let panels = cout.div_ceil(CHANNELS);
    // A kept buffer: 5 MB of fresh zeroed memory (conv4's weights) cost a page fault per page.
    let mut packed = Scratch::new(panels * panel_len);
    packed[..panels * panel_len]
        .par_chunks_mut(panel_len)
        .enumerate()
        .for_each(|(panel, values)| {
            let (first, width) = (panel * CHANNELS, panel_width(cout, panel));
            let used = cout.min(first + width) - first;
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
fn panel_len(shape: &ConvShape) -> usize {
    shape.kernel[0] * shape.kernel[1] * shape.channels_in * CHANNELS
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

/// The runs of output pixel `(oy, ox)` in a panel `width` channels wide: one per kernel row
/// that lies inside the image.
fn runs(shape: &ConvShape, [oy, ox]: [usize; 2], width: usize, out: &mut Vec<Run>) {
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
        input: ((oy + di - ph) * w + ox + cols.start - pw) * cin,
        weight: (di * kw + cols.start) * cin * width,
        len: cols.len() * cin,
    }));
}

/// The convolution of `x` with packed weights: tasks of (weight panel, block of up to
/// `TILE_ROWS` images), each running the tile over every output pixel and scattering its
/// sums into the `[B, Cout, OH, OW]` output.
fn convolve(x: &[f32], packed: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    let [in_pixels, out_pixels] = [shape.input, shape.output].map(|[h, w]| h * w);
    let (cin, cout) = (shape.channels_in, shape.channels_out);
    let image_len = in_pixels * cin;
    let x_last = channels_last(x, cin, in_pixels, cin);
    let panels = cout.div_ceil(CHANNELS);
    let panel_len = panel_len(shape);
    let mut y = vec![0.0; shape.batch * cout * out_pixels];
    let (out, y_len) = (Output(y.as_mut_ptr()), y.len());
    let blocks = shape.batch.div_ceil(TILE_ROWS);
    (0..panels * blocks)
        .into_par_iter()
        .for_each_init(Vec::new, |pixel_runs, task| {
            let (panel, block) = (task / blocks, task % blocks);
            let (first, images) = image_block(shape.batch, blocks, block);
            let width = panel_width(cout, panel);
            let weights = &packed[panel * panel_len..][..panel_len];
            let x_block = &x_last[first * image_len..][..images * image_len];
            let x_side = Side {
                values: x_block,
                row_stride: image_len,
                step: 1,
            };
            let w_side = Side {
                values: weights,
                row_stride: 0,
                step: width,
            };
            for pixel in 0..out_pixels {
                let [oy, ox] = [pixel / shape.output[1], pixel % shape.output[1]];
                runs(shape, [oy, ox], width, pixel_runs);
                let offset = (first * cout + panel * CHANNELS) * out_pixels + pixel;
                let target = Target {
                    row_stride: cout * out_pixels,
                    lane_stride: out_pixels,
                    lanes: (cout - panel * CHANNELS).min(CHANNELS),
                    room: y_len - offset,
                };
                // SAFETY: the tile writes this pixel of the task's images and output channels,
                // inside `y` (`room`).
                unsafe {
                    tile(
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

/// The first image and the number of images of block `index` of `blocks`: consecutive images
/// that share the batch evenly (sizes differ by at most one), so that no tile is left with a
/// few images.
fn image_block(batch: usize, blocks: usize, index: usize) -> (usize, usize) {
    let first = index * batch / blocks;
    (first, (index + 1) * batch / blocks - first)
}

/// `[B, C, P]` as `[B, P, row_len]`: each pixel's `C` values, then zeros up to `row_len`.
fn channels_last(x: &[f32], channels: usize, pixels: usize, row_len: usize) -> Scratch {
    let batch = x.len() / (channels * pixels);
    let mut last = Scratch::new(batch * pixels * row_len);
    last[..batch * pixels * row_len]
        .par_chunks_mut(pixels * row_len)
        .zip(x.par_chunks(channels * pixels))
        .for_each(|(dst, src)| {
            for (c, plane) in src.chunks(pixels).enumerate() {
                for (p, value) in plane.iter().enumerate() {
                    dst[p * row_len + c] = *value;
                }
            }
            if row_len > channels {
                dst.chunks_mut(row_len)
                    .for_each(|pixel| pixel[channels..].fill(0.0));
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
/// AVX-512 (`applies`).
unsafe fn tile(
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
    // SAFETY: every run lies inside both operands (checked above); `y` and the CPU are the
    // caller's.
    unsafe {
        let args = (
            runs,
            (x.values.as_ptr(), [x.row_stride, x.step]),
            (w.values.as_ptr(), w.step),
            (y, Target { lanes, ..target }),
        );
        match (rows, width == CHANNELS) {
            (6, true) => avx512::tile::<6, 4>(args),
            (5, true) => avx512::tile::<5, 4>(args),
            (4, true) => avx512::tile::<4, 4>(args),
            (3, true) => avx512::tile::<3, 4>(args),
            (2, true) => avx512::tile::<2, 4>(args),
            (1, true) => avx512::tile::<1, 4>(args),
            (6, false) => avx512::tile::<6, 2>(args),
            (5, false) => avx512::tile::<5, 2>(args),
            (4, false) => avx512::tile::<4, 2>(args),
            (3, false) => avx512::tile::<3, 2>(args),
            (2, false) => avx512::tile::<2, 2>(args),
            (1, false) => avx512::tile::<1, 2>(args),
            (rows, _) => unreachable!("no tile for {rows} images"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (rows, width, runs, x, w, y, target);
        unreachable!("the direct convolution needs AVX-512 (`applies`)");
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Run, Target};

    /// The runs; the broadcast side with its row stride and step; the vector side with its
    /// step; the output and where in it the sums land.
    type TileArgs<'a> = (
        &'a [Run],
        (*const f32, [usize; 2]),
        (*const f32, usize),
        (*mut f32, Target),
    );

    /// The tile of `R` rows and `V` vectors of output channels (see `super::tile`).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{im2col, max_difference, noise};

    fn shape(
        batch: usize,
        [cin, cout]: [usize; 2],
        input: [usize; 2],
        k: [usize; 2],
        p: [usize; 2],
    ) -> ConvShape {
        ConvShape {
            batch,
            channels_in: cin,
            input,
            channels_out: cout,
            kernel: k,
            stride: [1, 1],
            padding: p,
            output: [0, 1].map(|a| input[a] + 2 * p[a] + 1 - k[a]),
        }
    }

    /// Forward pass and gradients against im2col + GEMM, which multiplies every tap.
    #[test]
    fn matches_im2col_on_small_maps_and_odd_shapes() {
        if !has_avx512() {
            eprintln!("no AVX-512 on this CPU: the direct convolution is not used here");
            return;
        }
        for s in [
            shape(32, [16, 70], [10, 10], [5, 5], [2, 2]),
            shape(7, [24, 64], [4, 4], [3, 3], [1, 1]),
            shape(13, [5, 130], [6, 3], [3, 2], [2, 0]),
            shape(6, [3, 8], [2, 2], [3, 3], [1, 1]),
        ] {
            assert!(applies(&s), "{s:?}");
            let x = noise(s.batch * s.channels_in * s.input[0] * s.input[1], 1);
            let w = noise(s.weight_len(), 2);
            let b = noise(s.channels_out, 3);
            let y = forward(&x, &w, Some(&b), &s);
            let expected = im2col::forward(&x, &w, Some(&b), &s);
            assert!(max_difference(&y, &expected) < 1e-4, "forward {s:?}");
            let dy = noise(expected.len(), 4);
            let expected = im2col::backward(&x, &w, &dy, &s, true);
            let dx = input_grad(&dy, &w, &s);
            assert!(
                max_difference(&dx, &expected.x.unwrap()) < 1e-4,
                "input gradient {s:?}"
            );
            let (dw, db) = weight_grad(&x, &dy, &s);
            assert!(
                max_difference(&dw, &expected.weight) < 1e-3,
                "weight gradient {s:?}"
            );
            assert!(
                max_difference(&db, &expected.bias) < 1e-3,
                "bias gradient {s:?}"
            );
        }
    }

    #[test]
    fn takes_only_stride_one_full_tiles_and_narrow_padding() {
        let s = shape(32, [16, 70], [10, 10], [5, 5], [2, 2]);
        assert_eq!(applies(&s), has_avx512());
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
    }
}
