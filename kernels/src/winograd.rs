//! Stride-1 "same" convolutions with 3x3 and 5x5 kernels by Winograd's minimal filtering
//! F(2x2, r x r) (Lavin & Gray, 2015). Each 2x2 output tile takes α² products per channel pair
//! (α = r + 1: 16 instead of 36 for 3x3, 36 instead of 100 for 5x5), as α² GEMMs
//! `M_ξ[Cout, T] = U_ξ[Cout, Cin] · V_ξ[Cin, T]` over the tiles `T` of a group of images,
//! between small fixed transforms: `U = G g Gᵀ` for each kernel, `V = Bᵀ d B` for each αxα input
//! tile (tiles overlap by r - 1), `Y = Aᵀ M A` for each output tile.
//!
//! The input gradient of such a layer is the same kind of convolution (of the output gradient
//! with the kernels flipped and their channel axes swapped), so it takes this path too; the
//! weight gradient sums `(A dY Aᵀ) ⊙ V` over the tiles (α² more GEMMs) and maps the sums back
//! with `Gᵀ · G`.
//!
//! The tile transforms run over zero-bordered planes, first down the columns of a band of rows
//! (vectorised along the row), then along each transformed row; the matrices are constants,
//! so their zeros and ones cost nothing. (Generic 4x4 matrix products per tile took 2.5x as
//! long.) Accuracy in `f32`: within a few 1e-6 of the largest output for 3x3 (the transforms
//! add, subtract and halve), a few 1e-5 for 5x5 (points ±2 scale by up to 4). Measured and
//! not kept: F(4x4, 3x3), no faster here as its larger tiles fall out of cache.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use gemm::Parallelism;

use crate::im2col::{ConvShape, Grouping, add_assign, matmul};
use crate::scratch::Scratch;
use crate::shared_output::Output;

/// Output tile side.
const M: usize = 2;

/// Whether the convolution takes this module's path: it fits (see [`fits`]), and its maps and
/// batch are large enough for Winograd to pay off.
pub fn applies(shape: &ConvShape) -> bool {
    applies_with_kernels_kept(shape) && shape.batch >= MIN_BATCH
}

/// The fewest images at which Winograd beats im2col + GEMM. Each call transforms the whole
/// weight (16 or 36 products per output channel and input channel), and the products over a
/// few images' tiles are too short to hide it. Forward passes on two cores of an Intel Xeon
/// (family 6, model 207), im2col against Winograd, d2l's layers at 224 px: at batch 1 conv2
/// 7.2 against 12.5 ms and conv3-5 1.7-2.6 against 4.3-6.4; at batch 4 22.9 against 24.7 and
/// 6.5-9.6 against 8.1-12.2; at batch 8 Winograd is level on conv2 (41.5 against 40.5) and
/// ahead on conv3-5 (12.5-16.7 against 14.0-22.1). torchvision's layers alike.
const MIN_BATCH: usize = 8;

/// Whether the convolution takes this module's path when its kernels were transformed
/// beforehand ([`TransformedKernels`], kept by a caller whose weights stay the same from call to
/// call): at every batch size, as the tiles no longer pay the kernels' transform (below two
/// images per thread, each step is shared out among the threads instead of each product).
/// Forward passes on two cores of an Intel Xeon (family 6, model 167), medians of 15, im2col
/// against Winograd on transformed kernels, d2l's layers at 224 px: conv2 3.8 against 2.6 ms
/// at batch 1, 6.0 against 4.0 at batch 2, 12.0 against 8.2 at batch 4; conv3-5 1.3-1.9
/// against 0.9-1.2 at batch 1, 1.9-2.8 against 1.4-2.0 at batch 2; torchvision's layers alike
/// (conv2 2.5 against 2.1 at batch 1).
pub fn applies_with_kernels_kept(shape: &ConvShape) -> bool {
    fits(shape) && shape.output[0].min(shape.output[1]) >= min_side(shape.kernel[0])
}

/// Whether `shape` is a 3x3 or 5x5, stride-1 convolution that keeps the input's size, which
/// these kernels compute.
pub fn fits(shape: &ConvShape) -> bool {
    let [r, _] = shape.kernel;
    matches!(r, 3 | 5)
        && shape.kernel == [r, r]
        && shape.stride == [1, 1]
        && shape.padding == [r / 2, r / 2]
        && shape.output == shape.input
}

/// The smallest output side at which Winograd beats im2col + GEMM for an r x r kernel. On
/// small maps the tiles' zero border and transforms outweigh the saved products. Measured with
/// `alexnet bench --layers` at batch 32 (AMD EPYC, Zen 5): 3x3 on 4x4 maps (96 px) took 10-14
/// ms forward + backward with im2col against 13-19 with Winograd, on 6x6 and 8x8 about the
/// same or Winograd ahead, on 12x12 Winograd 30% ahead; 5x5 on 10x10 maps (96 px) took 34-36
/// ms against 60-68, on 14x14 about the same, on 18x18 and 26x26 Winograd ahead.
fn min_side(r: usize) -> usize {
    match r {
        3 => 6,
        _ => 12,
    }
}

/// `Σ_s coefficients[s] · values[s]`; with constant coefficients the zero terms fold away, and
/// so does the start, `-0.0` (`-0.0 + v` is `v` for every `v`, `+0.0 + v` is not for `-0.0`).
#[inline(always)]
fn combine<const N: usize>(coefficients: &[f32; N], values: [f32; N]) -> f32 {
    let mut sum = -0.0;
    for (&c, v) in coefficients.iter().zip(values) {
        if c == 1.0 {
            sum += v;
        } else if c == -1.0 {
            sum -= v;
        } else if c != 0.0 {
            sum += c * v;
        }
    }
    sum
}

/// `t · tile · tᵀ`.
fn sandwich<const R: usize, const C: usize>(
    t: &[[f32; C]; R],
    tile: &[[f32; C]; C],
) -> [[f32; R]; R] {
    // left = t · tile, [R, C]
    let left: [[f32; C]; R] = std::array::from_fn(|i| {
        std::array::from_fn(|j| (0..C).map(|k| t[i][k] * tile[k][j]).sum())
    });
    std::array::from_fn(|i| std::array::from_fn(|j| (0..C).map(|k| left[i][k] * t[j][k]).sum()))
}

fn transpose<const R: usize, const C: usize>(m: &[[f32; C]; R]) -> [[f32; R]; C] {
    std::array::from_fn(|i| std::array::from_fn(|j| m[j][i]))
}

/// The sizes of one image's tiling.
#[derive(Clone, Copy)]
struct Tiling {
    channels_in: usize,
    channels_out: usize,
    height: usize,
    width: usize,
    tiles_high: usize,
    tiles_wide: usize,
}

impl Tiling {
    fn new(channels_in: usize, channels_out: usize, [height, width]: [usize; 2]) -> Self {
        Self {
            channels_in,
            channels_out,
            height,
            width,
            tiles_high: height.div_ceil(M),
            tiles_wide: width.div_ceil(M),
        }
    }

    fn tiles(&self) -> usize {
        self.tiles_high * self.tiles_wide
    }

    fn input_len(&self) -> usize {
        self.channels_in * self.height * self.width
    }

    fn output_len(&self) -> usize {
        self.channels_out * self.height * self.width
    }
}

/// A zero-bordered copy of one channel plane: the plane sits at (`offset`, `offset`) and the
/// rest stays zero, so tiles at the edges need no bounds checks.
#[derive(Clone)]
struct PaddedPlane {
    values: Vec<f32>,
    width: usize,
    offset: usize,
}

impl PaddedPlane {
    fn new(height: usize, width: usize, offset: usize) -> Self {
        Self {
            values: vec![0.0; height * width],
            width,
            offset,
        }
    }

    /// Copies `plane` (rows of `plane_width`) in; the border is never written.
    fn fill(&mut self, plane: &[f32], plane_width: usize) {
        for (y, row) in plane.chunks_exact(plane_width).enumerate() {
            let start = (y + self.offset) * self.width + self.offset;
            self.values[start..start + plane_width].copy_from_slice(row);
        }
    }

    fn row(&self, y: usize) -> &[f32] {
        &self.values[y * self.width..][..self.width]
    }
}

/// `band[k][x] = Σ_s coefficients[k][s] · rows[s][x]`: one transform down the columns.
#[inline(always)]
fn transform_columns<const S: usize, const K: usize>(
    coefficients: &[[f32; S]; K],
    rows: [&[f32]; S],
    band: &mut [Vec<f32>; K],
) {
    let width = band[0].len();
    let rows = rows.map(|row| &row[..width]);
    for x in 0..width {
        let column = rows.map(|row| row[x]);
        for (k, out) in band.iter_mut().enumerate() {
            out[x] = combine(&coefficients[k], column);
        }
    }
}

/// The transform `C t Cᵀ` (`C` = `coefficients`, `A x S`) of every `S x S` tile of a group's
/// planes `[images][channels][H, W]` into `out[ξ][channel][row_len]`, at column
/// `image · tiles + tile`. Tile (ty, tx) starts at (2·ty, 2·tx) of each plane's zero-bordered
/// copy `padded`.
///
/// `planes` are the planes from number `first_plane` on; `out` must hold `[A²][channels]
/// [row_len]` and have no other writer of these planes' columns meanwhile. Inlined where the
/// coefficients are constants, so that their zeros and ones fold away.
#[inline(always)]
fn transform_tiles<const S: usize, const A: usize>(
    (planes, first_plane): (&[f32], usize),
    channels: usize,
    tiling: &Tiling,
    coefficients: &[[f32; S]; A],
    mut padded: PaddedPlane,
    row_len: usize,
    out: Output,
) {
    let xi_stride = channels * row_len;
    let mut band = [(); A].map(|_| vec![0.0; padded.width]);
    let planes = planes.chunks_exact(tiling.height * tiling.width);
    for (index, plane) in (first_plane..).zip(planes) {
        let (image, channel) = (index / channels, index % channels);
        padded.fill(plane, tiling.width);
        for ty in 0..tiling.tiles_high {
            let rows = std::array::from_fn(|s| padded.row(M * ty + s));
            transform_columns(coefficients, rows, &mut band);
            // Along each transformed row k: the S values of each tile, combined by row j of
            // `coefficients`, go to plane k·A + j.
            let first_tile = channel * row_len + image * tiling.tiles() + ty * tiling.tiles_wide;
            for (k, row) in band.iter().enumerate() {
                for tx in 0..tiling.tiles_wide {
                    let values: [f32; S] = std::array::from_fn(|s| row[M * tx + s]);
                    for (j, coefficients) in coefficients.iter().enumerate() {
                        let at = (k * A + j) * xi_stride + first_tile + tx;
                        // SAFETY: the caller gives room for every plane's columns, and only
                        // this call writes these planes' (image, channel) columns.
                        unsafe { out.at(at).write(combine(coefficients, values)) };
                    }
                }
            }
        }
    }
}

/// `out` as the shared output [`transform_tiles`] writes, once checked to hold `[A²][channels]
/// [row_len]` with room in a row for the tiles of every image of `planes` (`planes_len`
/// values).
fn transform_target(
    out: &mut [f32],
    (planes_len, channels): (usize, usize),
    tiling: &Tiling,
    row_len: usize,
    a: usize,
) -> Output {
    let images = planes_len / (tiling.height * tiling.width * channels);
    assert!(
        a * a * channels * row_len <= out.len() && images * tiling.tiles() <= row_len,
        "room for every transformed plane"
    );
    Output(out.as_mut_ptr())
}

/// An output value not yet written.
type Fresh = MaybeUninit<f32>;

/// Input planes per task when one group's input transform is shared out among the threads.
const PLANES_PER_TASK: usize = 8;

/// F(2x2, R x R) with `A = R + 1` interpolation points: its transform matrices as constants
/// (so that their zeros and ones fold away), and the kernels built on them.
trait Minimal<const R: usize, const A: usize> {
    /// `Bᵀ`: input tile to transform domain.
    const BT: [[f32; A]; A];
    /// `G`: kernel to transform domain.
    const G: [[f32; R]; A];
    /// `Aᵀ`: transform domain to output tile.
    const AT: [[f32; A]; M];

    /// The kernels `[O, C, R, R]` transformed to `U[ξ][O][C]`.
    fn kernels(weight: &[f32], out_channels: usize, in_channels: usize) -> Vec<f32> {
        let mut u = vec![0.0; A * A * out_channels * in_channels];
        for (pair, g) in weight.chunks_exact(R * R).enumerate() {
            let g: [[f32; R]; R] = std::array::from_fn(|r| std::array::from_fn(|c| g[r * R + c]));
            for (xi, value) in sandwich(&Self::G, &g).as_flattened().iter().enumerate() {
                u[xi * out_channels * in_channels + pair] = *value;
            }
        }
        u
    }

    /// Transform-domain sums `[ξ][O][C]` back to kernel gradients `[O, C, R, R]`: `Gᵀ S G`.
    fn kernel_grads(sums: &[f32], out_channels: usize, in_channels: usize) -> Vec<f32> {
        let gt = transpose(&Self::G);
        let pairs = out_channels * in_channels;
        let mut weight = vec![0.0; pairs * R * R];
        for (pair, g) in weight.chunks_exact_mut(R * R).enumerate() {
            let s: [[f32; A]; A] =
                std::array::from_fn(|r| std::array::from_fn(|c| sums[(r * A + c) * pairs + pair]));
            g.copy_from_slice(sandwich(&gt, &s).as_flattened());
        }
        weight
    }

    /// Transforms every input tile of a group of images into `v[ξ][C][row_len]`: `Bᵀ d B` for
    /// the AxA tile `d` at (2·ty - R/2, 2·tx - R/2).
    /// With `parallel` (a group of too few images to give every thread one) the planes are
    /// shared out among the threads.
    fn inputs(images: &[f32], tiling: &Tiling, row_len: usize, v: &mut [f32], parallel: bool) {
        let side = |tiles: usize| M * tiles + A - M;
        let padded = PaddedPlane::new(side(tiling.tiles_high), side(tiling.tiles_wide), R / 2);
        let channels = tiling.channels_in;
        let out = transform_target(v, (images.len(), channels), tiling, row_len, A);
        // `Self::BT` is named in this closure, not passed into it, so that it stays a constant
        // where `transform_tiles` is inlined: passed in, it ran twice as long.
        let transform = |planes: (&[f32], usize)| {
            transform_tiles(
                planes,
                channels,
                tiling,
                &Self::BT,
                padded.clone(),
                row_len,
                out,
            )
        };
        let task_len = PLANES_PER_TASK * tiling.height * tiling.width;
        match parallel {
            true => images
                .par_chunks(task_len)
                .enumerate()
                .for_each(|(task, planes)| transform((planes, task * PLANES_PER_TASK))),
            false => transform((images, 0)),
        }
    }

    /// Transforms every 2x2 output-gradient tile of a group of images into `w[ξ][O][row_len]`,
    /// `A dY Aᵀ` (positions past the image's edge count as zero), and adds each channel's sum
    /// of `dy` to `bias`.
    fn output_grads(dy: &[f32], tiling: &Tiling, row_len: usize, w: &mut [f32], bias: &mut [f32]) {
        let c_out = tiling.channels_out;
        for (index, plane) in dy.chunks_exact(tiling.height * tiling.width).enumerate() {
            bias[index % c_out] += plane.iter().sum::<f32>();
        }
        let padded = PaddedPlane::new(M * tiling.tiles_high, M * tiling.tiles_wide, 0);
        let a = transpose(&Self::AT);
        let out = transform_target(w, (dy.len(), c_out), tiling, row_len, A);
        transform_tiles((dy, 0), c_out, tiling, &a, padded, row_len, out);
    }

    /// Turns the products `m[ξ][O][row_len]` of a group back into output images, plus `bias`:
    /// `Y = Aᵀ M A` for each tile. With `split_channels` the channels are shared out among the
    /// threads.
    fn outputs(
        m: &[f32],
        tiling: &Tiling,
        row_len: usize,
        bias: Option<&[f32]>,
        outputs: &mut [Fresh],
        split_channels: bool,
    ) {
        let (tiles_wide, width) = (tiling.tiles_wide, tiling.width);
        let xi_stride = tiling.channels_out * row_len;
        // Whole tiles go to an even-sized plane first; its valid part is then copied out.
        let tiled_width = M * tiles_wide;
        let scratch = || vec![0.0; M * tiling.tiles_high * tiled_width];
        let output_channel = |tiled: &mut Vec<f32>, (plane, channel): (usize, &mut [Fresh])| {
            let (i, o) = (plane / tiling.channels_out, plane % tiling.channels_out);
            for ty in 0..tiling.tiles_high {
                let first_tile = o * row_len + i * tiling.tiles() + ty * tiles_wide;
                let rows: [&[f32]; A] = std::array::from_fn(|k| {
                    &m[k * A * xi_stride + first_tile..][..(A - 1) * xi_stride + tiles_wide]
                });
                let band = &mut tiled[M * ty * tiled_width..][..M * tiled_width];
                for tx in 0..tiles_wide {
                    // Along each row k of the tile: p_k = (M Aᵀᵀ)[k][0], q_k = [k][1].
                    let along: [[f32; A]; M] = std::array::from_fn(|col| {
                        std::array::from_fn(|k| {
                            let row = std::array::from_fn(|j| rows[k][j * xi_stride + tx]);
                            combine(&Self::AT[col], row)
                        })
                    });
                    for (r, at) in Self::AT.iter().enumerate() {
                        for (col, along) in along.iter().enumerate() {
                            band[r * tiled_width + M * tx + col] = combine(at, *along);
                        }
                    }
                }
            }
            let b = bias.map_or(0.0, |bias| bias[o]);
            for (row, tiled_row) in channel
                .chunks_exact_mut(width)
                .zip(tiled.chunks(tiled_width))
            {
                for (dst, value) in row.iter_mut().zip(tiled_row) {
                    dst.write(value + b);
                }
            }
        };
        let plane = tiling.height * width;
        match split_channels {
            true => outputs
                .par_chunks_exact_mut(plane)
                .enumerate()
                .for_each_init(scratch, output_channel),
            false => {
                let mut tiled = scratch();
                for channel in outputs.chunks_exact_mut(plane).enumerate() {
                    output_channel(&mut tiled, channel);
                }
            }
        }
    }

    /// Images per GEMM: fewer tiles than the im2col path takes, so that a group's transformed
    /// tiles (A² values each) stay in cache between the transforms and the GEMMs.
    fn grouping(batch: usize, tiling: &Tiling) -> Grouping {
        Grouping::for_columns(batch, A * A * tiling.tiles() / 4)
    }

    /// `x [B, C, H, W]` convolved with `weight [O, C, R, R]` (stride 1, padding R/2) plus `bias`.
    fn convolve(
        x: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        batch: usize,
        tiling: Tiling,
    ) -> Vec<f32> {
        let u = Self::kernels(weight, tiling.channels_out, tiling.channels_in);
        Self::convolve_transformed(x, &u, bias, batch, tiling)
    }

    /// [`Minimal::convolve`] with the kernels already transformed, `u[ξ][O][C]`.
    fn convolve_transformed(
        x: &[f32],
        u: &[f32],
        bias: Option<&[f32]>,
        batch: usize,
        tiling: Tiling,
    ) -> Vec<f32> {
        let (c_in, c_out) = (tiling.channels_in, tiling.channels_out);
        let grouping = Self::grouping(batch, &tiling);
        // Too few images to give every thread a group: each step of the one group is shared out.
        let few_images = grouping.few_images();
        // Every value of `y` is written once by `outputs`: not zeroed first (5.5-18 MB per layer
        // at batch 32).
        let len = batch * tiling.output_len();
        let mut y = Vec::with_capacity(len);
        y.spare_capacity_mut()[..len]
            .par_chunks_mut(grouping.size * tiling.output_len())
            .zip(x.par_chunks(grouping.size * tiling.input_len()))
            .for_each_init(
                // Scratch: every value used is written first (the whole of `v` and `m` for
                // the group's columns).
                || {
                    let columns = grouping.size * tiling.tiles();
                    (
                        Scratch::new(A * A * c_in * columns),
                        Scratch::new(A * A * c_out * columns),
                    )
                },
                |(v, m), (outputs, images)| {
                    let row_len = images.len() / tiling.input_len() * tiling.tiles();
                    Self::inputs(images, &tiling, row_len, v, few_images);
                    Self::products(u, v, m, [c_out, row_len, c_in], few_images);
                    Self::outputs(m, &tiling, row_len, bias, outputs, few_images);
                },
            );
        // SAFETY: `outputs` wrote every value of each group's images, and the groups cover
        // the batch.
        unsafe { y.set_len(len) };
        y
    }

    /// `m[ξ] = u[ξ] · v[ξ]` for every ξ, `[O, C] · [C, T]` for `[O, T, C]` = `dims`. With
    /// `split_positions` (a group of too few images to give every thread one) the α² products
    /// are shared out among the threads, each computed by one: products of a few hundred
    /// columns split poorly across threads.
    fn products(u: &[f32], v: &[f32], m: &mut [f32], dims: [usize; 3], split_positions: bool) {
        let [c_out, row_len, c_in] = dims;
        let product = |(u_xi, (v_xi, m_xi)): (&[f32], (&[f32], &mut [f32]))| {
            // SAFETY: u_xi is [O, C], v_xi is [C, row_len], m_xi is [O, row_len].
            unsafe {
                matmul(
                    dims,
                    m_xi,
                    false,
                    (u_xi, 1, c_in),
                    (v_xi, 1, row_len),
                    Parallelism::None,
                )
            };
        };
        let u = u.chunks_exact(c_out * c_in);
        let v = v.chunks_exact(c_in * row_len);
        let m = m.chunks_exact_mut(c_out * row_len);
        let positions = u.zip(v.zip(m)).take(A * A);
        match split_positions {
            true => positions.par_bridge().for_each(product),
            false => positions.for_each(product),
        }
    }

    /// Sums over a group's tiles for the weight gradient:
    /// `sums[ξ][O][C] += w[ξ][O][T] · v[ξ][C][T]ᵀ`.
    fn accumulate_products(
        w: &[f32],
        v: &[f32],
        tiling: &Tiling,
        row_len: usize,
        sums: &mut [f32],
    ) {
        let (c_in, c_out) = (tiling.channels_in, tiling.channels_out);
        for xi in 0..A * A {
            let w_xi = &w[xi * c_out * row_len..][..c_out * row_len];
            let v_xi = &v[xi * c_in * row_len..][..c_in * row_len];
            let sums_xi = &mut sums[xi * c_out * c_in..][..c_out * c_in];
            // SAFETY: w_xi is [O, row_len], v_xi read as v_xiᵀ [row_len, C], sums_xi is [O, C].
            unsafe {
                matmul(
                    [c_out, c_in, row_len],
                    sums_xi,
                    true,
                    (w_xi, 1, row_len),
                    (v_xi, row_len, 1),
                    gemm::Parallelism::None,
                )
            };
        }
    }

    /// The weight and bias gradients for the input `x` and the output gradient `dy`.
    fn weight_grad(x: &[f32], dy: &[f32], batch: usize, tiling: Tiling) -> (Vec<f32>, Vec<f32>) {
        let grouping = Self::grouping(batch, &tiling);
        let groups = batch.div_ceil(grouping.size);
        let new_sums = |images| WeightGradSums::new(&tiling, A * A, images);
        let total = x
            .par_chunks(grouping.size * tiling.input_len())
            .zip(dy.par_chunks(grouping.size * tiling.output_len()))
            .with_min_len(groups.div_ceil(rayon::current_num_threads()))
            .fold(
                || new_sums(grouping.size),
                |mut acc, (images, dy)| {
                    let row_len = images.len() / tiling.input_len() * tiling.tiles();
                    Self::inputs(images, &tiling, row_len, &mut acc.v, false);
                    Self::output_grads(dy, &tiling, row_len, &mut acc.w, &mut acc.bias);
                    Self::accumulate_products(&acc.w, &acc.v, &tiling, row_len, &mut acc.sums);
                    acc
                },
            )
            .reduce(|| new_sums(0), WeightGradSums::add);
        let weight = Self::kernel_grads(&total.sums, tiling.channels_out, tiling.channels_in);
        (weight, total.bias)
    }
}

/// F(2x2, 3x3) at the points 0, 1, -1 and ∞.
enum F2x3 {}

impl Minimal<3, 4> for F2x3 {
    const BT: [[f32; 4]; 4] = [
        [1.0, 0.0, -1.0, 0.0],
        [0.0, 1.0, 1.0, 0.0],
        [0.0, -1.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, -1.0],
    ];
    const G: [[f32; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    const AT: [[f32; 4]; M] = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];
}

/// F(2x2, 5x5) at the points 0, 1, -1, 2, -2 and ∞ (Toom-Cook).
enum F2x5 {}

impl Minimal<5, 6> for F2x5 {
    const BT: [[f32; 6]; 6] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];
    const G: [[f32; 5]; 6] = [
        [1.0 / 4.0, 0.0, 0.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0, -1.0 / 3.0, 2.0 / 3.0],
        [0.0, 0.0, 0.0, 0.0, 1.0],
    ];
    const AT: [[f32; 6]; M] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 1.0],
    ];
}

/// One thread's transform buffers and its sums of the weight and bias gradients. The
/// transform buffers come from the thread's scratch pool: each group writes every value of
/// them it reads, and zeroing them (up to 12 MB per thread for conv4) cost more than reusing.
struct WeightGradSums {
    sums: Vec<f32>,
    bias: Vec<f32>,
    v: Scratch,
    w: Scratch,
}

impl WeightGradSums {
    fn new(tiling: &Tiling, positions: usize, images: usize) -> Self {
        let columns = images * tiling.tiles();
        Self {
            sums: vec![0.0; positions * tiling.channels_out * tiling.channels_in],
            bias: vec![0.0; tiling.channels_out],
            v: Scratch::new(positions * tiling.channels_in * columns),
            w: Scratch::new(positions * tiling.channels_out * columns),
        }
    }

    fn add(mut self, other: Self) -> Self {
        add_assign(&mut self.sums, &other.sums);
        add_assign(&mut self.bias, &other.bias);
        self
    }
}

/// The convolution of [`crate::im2col::forward`] for a layer where [`applies`].
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    let tiling = Tiling::new(shape.channels_in, shape.channels_out, shape.input);
    match shape.kernel[0] {
        3 => F2x3::convolve(x, weight, bias, shape.batch, tiling),
        _ => F2x5::convolve(x, weight, bias, shape.batch, tiling),
    }
}

/// The input gradient for `dy [B, O, H, W]`: `dy` convolved with the kernels flipped in space
/// and with their channel axes swapped, `[C, O, R, R]`.
/// A layer's kernels in Winograd's transform domain, `U[ξ][O][C]`: the first step of every
/// [`forward`], which costs as much as the products of one image at 224 px. A caller whose
/// weights stay the same from call to call (inference) makes it once with
/// [`transform_kernels`] and passes it to [`forward_transformed`].
pub struct TransformedKernels {
    values: Vec<f32>,
    /// `[O, C, R]`: the layer it was made for.
    layer: [usize; 3],
}

/// `[O, C, R]`: what a layer's transformed kernels depend on.
pub(crate) fn layer_of(shape: &ConvShape) -> [usize; 3] {
    [shape.channels_out, shape.channels_in, shape.kernel[0]]
}

/// The kernels `weight [O, C, R, R]` of a convolution that [`fits`], transformed.
pub fn transform_kernels(weight: &[f32], shape: &ConvShape) -> TransformedKernels {
    assert!(fits(shape), "not a Winograd layer: {shape:?}");
    let (c_in, c_out) = (shape.channels_in, shape.channels_out);
    let values = match shape.kernel[0] {
        3 => F2x3::kernels(weight, c_out, c_in),
        _ => F2x5::kernels(weight, c_out, c_in),
    };
    TransformedKernels {
        values,
        layer: layer_of(shape),
    }
}

/// [`forward`] on kernels transformed by [`transform_kernels`] for this layer.
pub fn forward_transformed(
    x: &[f32],
    kernels: &TransformedKernels,
    bias: Option<&[f32]>,
    shape: &ConvShape,
) -> Vec<f32> {
    assert_eq!(kernels.layer, layer_of(shape), "kernels of another layer");
    let tiling = Tiling::new(shape.channels_in, shape.channels_out, shape.input);
    let u = &kernels.values;
    match shape.kernel[0] {
        3 => F2x3::convolve_transformed(x, u, bias, shape.batch, tiling),
        _ => F2x5::convolve_transformed(x, u, bias, shape.batch, tiling),
    }
}

pub fn input_grad(dy: &[f32], weight: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (c_in, c_out) = (shape.channels_in, shape.channels_out);
    let taps = shape.kernel[0] * shape.kernel[1];
    let mut flipped = vec![0.0; weight.len()];
    for o in 0..c_out {
        for c in 0..c_in {
            for k in 0..taps {
                flipped[(c * c_out + o) * taps + taps - 1 - k] = weight[(o * c_in + c) * taps + k];
            }
        }
    }
    let tiling = Tiling::new(c_out, c_in, shape.input);
    match shape.kernel[0] {
        3 => F2x3::convolve(dy, &flipped, None, shape.batch, tiling),
        _ => F2x5::convolve(dy, &flipped, None, shape.batch, tiling),
    }
}

/// The weight gradient `[O, C, R, R]` and bias gradient `[O]` of a layer where [`applies`],
/// for the input `x` and the output gradient `dy`: `Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G`, the
/// sum over tiles being α² GEMMs `[O, T] · [T, C]`.
pub fn weight_grad(x: &[f32], dy: &[f32], shape: &ConvShape) -> (Vec<f32>, Vec<f32>) {
    let tiling = Tiling::new(shape.channels_in, shape.channels_out, shape.input);
    match shape.kernel[0] {
        3 => F2x3::weight_grad(x, dy, shape.batch, tiling),
        _ => F2x5::weight_grad(x, dy, shape.batch, tiling),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im2col as conv_kernels;
    use crate::{max_difference, noise};

    fn shape(batch: usize, channels: [usize; 2], side: [usize; 2], kernel: usize) -> ConvShape {
        ConvShape {
            batch,
            channels_in: channels[0],
            input: side,
            channels_out: channels[1],
            kernel: [kernel, kernel],
            stride: [1, 1],
            padding: [kernel / 2, kernel / 2],
            output: side,
        }
    }

    /// Winograd in f32 is accurate to a few 1e-6 of the largest value for 3x3 kernels; the
    /// 5x5 transforms scale by up to 4 and lose about a decimal more.
    fn tolerance(reference: &[f32], kernel: usize) -> f32 {
        let relative = if kernel == 3 { 1e-5 } else { 1e-4 };
        relative * reference.iter().fold(1.0f32, |m, v| m.max(v.abs()))
    }

    #[test]
    fn matches_the_im2col_convolution_and_its_gradients() {
        matches_im2col();
        // With more threads than images, each step of a group is shared out among the threads.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(8).build();
        pool.expect("a thread pool").install(matches_im2col);
    }

    fn matches_im2col() {
        // Even and odd sides (a partial last tile), several images per GEMM group, a plane
        // smaller than the kernel.
        for kernel in [3, 5] {
            for (batch, channels, side) in [
                (5, [8, 6], [12, 12]),
                (3, [4, 7], [5, 7]),
                (1, [2, 3], [1, 2]),
            ] {
                let s = shape(batch, channels, side, kernel);
                assert!(fits(&s));
                let x = noise(batch * channels[0] * side[0] * side[1], 1);
                let weight = noise(s.weight_len(), 2);
                let bias = noise(channels[1], 3);
                let dy = noise(batch * channels[1] * side[0] * side[1], 4);
                let direct = conv_kernels::backward(&x, &weight, &dy, &s, true);
                let (weight_gradient, bias_gradient) = weight_grad(&x, &dy, &s);
                for (name, direct, fast) in [
                    (
                        "output",
                        conv_kernels::forward(&x, &weight, Some(&bias), &s),
                        forward(&x, &weight, Some(&bias), &s),
                    ),
                    (
                        "output on transformed kernels",
                        conv_kernels::forward(&x, &weight, Some(&bias), &s),
                        forward_transformed(&x, &transform_kernels(&weight, &s), Some(&bias), &s),
                    ),
                    (
                        "input gradient",
                        direct.x.unwrap(),
                        input_grad(&dy, &weight, &s),
                    ),
                    ("weight gradient", direct.weight, weight_gradient),
                    ("bias gradient", direct.bias, bias_gradient),
                ] {
                    let diff = max_difference(&direct, &fast);
                    assert!(
                        diff < tolerance(&direct, kernel),
                        "{name}, {kernel}x{kernel} {batch} {channels:?} {side:?}: {diff}"
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "kernels of another layer")]
    fn refuses_kernels_transformed_for_another_layer() {
        let three = shape(2, [4, 4], [8, 8], 3);
        let kernels = transform_kernels(&noise(three.weight_len(), 1), &three);
        let wider = shape(2, [4, 5], [8, 8], 3);
        forward_transformed(&noise(2 * 4 * 64, 2), &kernels, None, &wider);
    }

    #[test]
    fn applies_only_to_same_size_3x3_and_5x5_stride_1_on_large_enough_maps_and_batches() {
        for kernel in [3, 5] {
            assert!(applies(&shape(8, [1, 1], [12, 12], kernel)));
            assert!(
                !applies(&shape(4, [1, 1], [12, 12], kernel)),
                "too few images"
            );
            assert!(applies_with_kernels_kept(&shape(
                1,
                [1, 1],
                [12, 12],
                kernel
            )));
            assert!(!applies_with_kernels_kept(&shape(
                1,
                [1, 1],
                [4, 4],
                kernel
            )));
            assert!(fits(&shape(1, [1, 1], [4, 4], kernel)));
            assert!(!applies(&shape(8, [1, 1], [4, 4], kernel)));
        }
        assert!(applies(&shape(8, [1, 1], [6, 6], 3)));
        assert!(!applies(&shape(8, [1, 1], [10, 10], 5)));
        let s = shape(8, [1, 1], [8, 8], 3);
        assert!(applies(&s));
        for other in [
            ConvShape {
                stride: [2, 2],
                output: [4, 4],
                ..s
            },
            ConvShape {
                padding: [0, 0],
                output: [6, 6],
                ..s
            },
            ConvShape {
                kernel: [5, 5],
                output: [6, 6],
                ..s
            },
            ConvShape {
                kernel: [3, 5],
                padding: [1, 2],
                ..s
            },
            shape(8, [1, 1], [8, 8], 7),
        ] {
            assert!(!applies(&other), "{other:?}");
        }
    }
}
