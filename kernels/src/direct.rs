//! Direct convolution for stride-1 layers on maps too small for Winograd (conv2 to conv5 at 96
//! px), with AVX-512: the forward pass, and the input gradient as the forward pass of the
//! transposed convolution.
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
//! of products on both sides.

use rayon::prelude::*;

use crate::im2col::ConvShape;
use crate::scratch::Scratch;
use crate::small_gemm::Output;

/// Images per register tile: six rows of four vectors keep 24 accumulators in registers.
const IMAGES: usize = 6;
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

/// Whether this module computes `shape`'s forward pass and input gradient: stride 1, a
/// padding narrower than the kernel (so that the transposed convolution has a padding too),
/// enough images to fill a tile, and a CPU with AVX-512.
pub fn applies(shape: &ConvShape) -> bool {
    shape.stride == [1, 1]
        && shape.batch >= IMAGES
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
    let [kh, kw] = shape.kernel;
    let cin = shape.channels_in;
    let packed = pack(shape, |co, ci, di, dj| {
        weight[((co * cin + ci) * kh + di) * kw + dj]
    });
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
    let packed = pack(&transposed, |ci, co, di, dj| {
        weight[((co * cin + ci) * kh + kh - 1 - di) * kw + kw - 1 - dj]
    });
    convolve(dy, &packed, None, &transposed)
}

/// The weight as panels of output channels (see [`panel_width`]), each `[kh][kw][Cin][width]`
/// (zero past the last channel); `at(out, in, row, col)` reads one weight.
fn pack(shape: &ConvShape, at: impl Fn(usize, usize, usize, usize) -> f32 + Sync) -> Vec<f32> {
    let [kh, kw] = shape.kernel;
    let (cin, cout) = (shape.channels_in, shape.channels_out);
    let panel_len = kh * kw * cin * CHANNELS;
    let mut packed = vec![0.0; cout.div_ceil(CHANNELS) * panel_len];
    packed
        .par_chunks_mut(panel_len)
        .enumerate()
        .for_each(|(panel, values)| {
            let (first, width) = (panel * CHANNELS, panel_width(cout, panel));
            // One input channel at a time: its kh * kw rows of the panel stay in the L1 cache
            // while every output channel's few weights are read.
            for ci in 0..cin {
                for (lane, co) in (first..cout.min(first + width)).enumerate() {
                    for di in 0..kh {
                        for dj in 0..kw {
                            values[((di * kw + dj) * cin + ci) * width + lane] = at(co, ci, di, dj);
                        }
                    }
                }
            }
        });
    packed
}

/// One kernel row's taps inside the image for one output pixel: `len` products from `input`
/// in the channels-last image and `weight` in the packed panel on.
#[derive(Clone, Copy, Debug)]
struct Run {
    input: usize,
    weight: usize,
    len: usize,
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

/// The convolution of `x` with packed weights: tasks of (weight panel, block of `IMAGES`
/// images), each running the tile over every output pixel.
fn convolve(x: &[f32], packed: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    let [in_pixels, out_pixels] = [shape.input, shape.output].map(|[h, w]| h * w);
    let image_len = in_pixels * shape.channels_in;
    let x_last = channels_last(x, shape.channels_in, in_pixels);
    let panels = shape.channels_out.div_ceil(CHANNELS);
    let panel_len = packed.len() / panels;
    let pixel_len = panels * CHANNELS;
    let mut y_last = Scratch::new(shape.batch * out_pixels * pixel_len);
    let out = Output(y_last.as_mut_ptr());
    let blocks = shape.batch.div_ceil(IMAGES);
    (0..panels * blocks)
        .into_par_iter()
        .for_each_init(Vec::new, |pixel_runs, task| {
            let (panel, first) = (task / blocks, task % blocks * IMAGES);
            let images = IMAGES.min(shape.batch - first);
            let width = panel_width(shape.channels_out, panel);
            let weights = &packed[panel * panel_len..][..panel_len];
            let x_block = &x_last[first * image_len..][..images * image_len];
            for pixel in 0..out_pixels {
                let [oy, ox] = [pixel / shape.output[1], pixel % shape.output[1]];
                runs(shape, [oy, ox], width, pixel_runs);
                let offset = (first * out_pixels + pixel) * pixel_len + panel * CHANNELS;
                // SAFETY: the runs stay inside each image's channels-last input and the panel
                // (`runs`); the tile writes `width` values of `images` output pixels at this
                // task's own panel columns, inside `y_last`.
                unsafe {
                    let y = (out.at(offset), out_pixels * pixel_len);
                    tile(
                        [images, width],
                        pixel_runs,
                        (x_block, image_len),
                        weights,
                        y,
                    );
                }
            }
        });
    channels_first(&y_last, bias, shape, pixel_len)
}

/// `[B, C, P]` as `[B, P, C]`.
fn channels_last(x: &[f32], channels: usize, pixels: usize) -> Scratch {
    let image_len = channels * pixels;
    let mut last = Scratch::new(x.len());
    last[..x.len()]
        .par_chunks_mut(image_len)
        .zip(x.par_chunks(image_len))
        .for_each(|(dst, src)| {
            for (c, plane) in src.chunks(pixels).enumerate() {
                for (p, value) in plane.iter().enumerate() {
                    dst[p * channels + c] = *value;
                }
            }
        });
    last
}

/// `[B, P, pixel_len]` (its first `Cout` values per pixel) as `[B, Cout, P]`, plus the bias.
fn channels_first(
    y_last: &[f32],
    bias: Option<&[f32]>,
    shape: &ConvShape,
    pixel_len: usize,
) -> Vec<f32> {
    let pixels = shape.output[0] * shape.output[1];
    let c_out = shape.channels_out;
    let mut y = vec![0.0; shape.batch * c_out * pixels];
    y.par_chunks_mut(c_out * pixels)
        .zip(y_last.par_chunks(pixels * pixel_len))
        .for_each(|(image, src)| {
            // Pixel by pixel: contiguous reads, and writes to one cache line per channel that
            // stays in the L1 cache for the next pixels.
            for (p, pixel) in src.chunks(pixel_len).enumerate() {
                for (co, value) in pixel[..c_out].iter().enumerate() {
                    image[co * pixels + p] = value + bias.map_or(0.0, |bias| bias[co]);
                }
            }
        });
    y
}

/// `y[i, 0..width] = Σ runs x[i, run.input..][..len] · panel[run.weight..][..len, width]`
/// for the `images` rows `i`, `x` and `y` at their row strides.
///
/// # Safety
/// Every run lies inside each row of `x` and inside `weights`; `y` covers `images` rows of
/// `width` values; the CPU has AVX-512 (`applies`).
unsafe fn tile(
    [images, width]: [usize; 2],
    runs: &[Run],
    (x, x_stride): (&[f32], usize),
    weights: &[f32],
    (y, y_stride): (*mut f32, usize),
) {
    debug_assert!(runs.iter().all(|run| {
        run.input + run.len <= x_stride && run.weight + run.len * width <= weights.len()
    }));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded from the caller.
    unsafe {
        let args = (
            runs,
            (x.as_ptr(), x_stride),
            weights.as_ptr(),
            (y, y_stride),
        );
        match (images, width == CHANNELS) {
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
        let _ = (images, width, runs, x, weights, y, y_stride);
        unreachable!("the direct convolution needs AVX-512 (`applies`)");
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::Run;

    /// The tile of `R` images and `V` vectors of output channels (see `super::tile`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile<const R: usize, const V: usize>(
        (runs, (x, x_stride), weights, (y, y_stride)): (
            &[Run],
            (*const f32, usize),
            *const f32,
            (*mut f32, usize),
        ),
    ) {
        let mut sums = [[_mm512_setzero_ps(); V]; R];
        for run in runs {
            // SAFETY: the caller keeps every run inside `x`'s rows and the panel.
            unsafe {
                let (x, w) = (x.add(run.input), weights.add(run.weight));
                for p in 0..run.len {
                    let row = w.add(p * 16 * V);
                    let w: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(row.add(16 * v)));
                    for (i, sums) in sums.iter_mut().enumerate() {
                        let a = _mm512_set1_ps(*x.add(i * x_stride + p));
                        for (sum, w) in sums.iter_mut().zip(w) {
                            *sum = _mm512_fmadd_ps(a, w, *sum);
                        }
                    }
                }
            }
        }
        for (i, sums) in sums.iter().enumerate() {
            for (v, sum) in sums.iter().enumerate() {
                // SAFETY: `y` covers R rows of 16 * V values.
                unsafe { _mm512_storeu_ps(y.add(i * y_stride + 16 * v), *sum) };
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

    /// Forward pass and input gradient against im2col + GEMM, which multiplies every tap.
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
            let dx = input_grad(&dy, &w, &s);
            let expected = im2col::backward(&x, &w, &dy, &s, true).x.unwrap();
            assert!(
                max_difference(&dx, &expected) < 1e-4,
                "input gradient {s:?}"
            );
        }
    }

    #[test]
    fn takes_only_stride_one_full_tiles_and_narrow_padding() {
        let s = shape(32, [16, 70], [10, 10], [5, 5], [2, 2]);
        assert_eq!(applies(&s), has_avx512());
        assert!(!applies(&ConvShape {
            batch: IMAGES - 1,
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
