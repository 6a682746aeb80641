//! 3x3 convolutions with stride 1 and padding 1 by Winograd's minimal filtering F(2x2, 3x3)
//! (Lavin & Gray, 2015): each 2x2 output tile takes 16 products per channel pair instead of 36,
//! as 16 GEMMs `M_ξ[Cout, T] = U_ξ[Cout, Cin] · V_ξ[Cin, T]` over the tiles `T` of a group of
//! images, between small fixed transforms: `U = G g Gᵀ` for each kernel, `V = Bᵀ d B` for each
//! 4x4 input tile (tiles overlap by 2), `Y = Aᵀ M A` for each output tile.
//!
//! The transforms only add, subtract and halve, so in `f32` the results stay within a few 1e-6
//! of the largest output of the direct convolution. (Measured and not kept: F(4x4, 3x3), no
//! faster here as its larger transformed tiles fall out of cache; F(2x2, 5x5) for the 5x5
//! layer, 1.2x slower than im2col as its GEMMs have only 96 input channels.) The input gradient
//! of such a layer is the same kind of convolution (of the output gradient with the kernels
//! flipped and their channel axes swapped), so it takes this path too; the weight gradient
//! sums `(A dY Aᵀ) ⊙ V` over the tiles (16 more GEMMs) and maps the sums back with `Gᵀ · G`.
//! The tile transforms are written out as additions over zero-bordered planes: with generic
//! 4x4 matrix products they took half as long again as the GEMMs (2.5x what they take now).

use rayon::prelude::*;

use super::conv_kernels::{ConvShape, Grouping, matmul};

/// Whether `shape` is a 3x3, stride-1 convolution that keeps the input's size (padding 1).
pub fn applies(shape: &ConvShape) -> bool {
    shape.kernel == [3, 3]
        && shape.stride == [1, 1]
        && shape.padding == [1, 1]
        && shape.output == shape.input
}

/// Output tile side.
const M: usize = 2;
/// Input tile side.
const ALPHA: usize = M + 2;
/// The transform positions of a tile.
const XI: usize = ALPHA * ALPHA;

/// `G`: kernel to transform domain.
const G: [[f32; 3]; ALPHA] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// `Gᵀ`: transform domain back to a kernel's gradient.
const GT: [[f32; ALPHA]; 3] = [
    [1.0, 0.5, 0.5, 0.0],
    [0.0, 0.5, -0.5, 0.0],
    [0.0, 0.5, 0.5, 1.0],
];

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

/// The kernels `[O, C, 3, 3]` transformed to `U[ξ][O][C]`.
fn transform_kernels(weight: &[f32], out_channels: usize, in_channels: usize) -> Vec<f32> {
    let mut u = vec![0.0; XI * out_channels * in_channels];
    for (pair, g) in weight.chunks_exact(9).enumerate() {
        let g: [[f32; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| g[r * 3 + c]));
        for (xi, value) in sandwich(&G, &g).as_flattened().iter().enumerate() {
            u[xi * out_channels * in_channels + pair] = *value;
        }
    }
    u
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

/// Transforms every input tile of a group of images into `v[ξ][C][row_len]`: `V = Bᵀ d B` for
/// the 4x4 tile `d` at (2·ty - 1, 2·tx - 1), with
/// `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`, written out as additions:
/// first down the columns of a band of four rows, then along each transformed row.
fn transform_inputs(images: &[f32], tiling: &Tiling, row_len: usize, v: &mut [f32]) {
    let tiles_wide = tiling.tiles_wide;
    let plane = tiling.height * tiling.width;
    let xi_stride = tiling.channels_in * row_len;
    let mut padded = PaddedPlane::new(2 * tiling.tiles_high + 2, 2 * tiles_wide + 2, 1);
    let mut band = [(); ALPHA].map(|_| vec![0.0; padded.width]);
    for (i, image) in images.chunks_exact(tiling.input_len()).enumerate() {
        for (c, channel) in image.chunks_exact(plane).enumerate() {
            padded.fill(channel, tiling.width);
            for ty in 0..tiling.tiles_high {
                let d: [&[f32]; ALPHA] = std::array::from_fn(|r| padded.row(M * ty + r));
                let [t0, t1, t2, t3] = &mut band;
                for x in 0..padded.width {
                    t0[x] = d[0][x] - d[2][x];
                    t1[x] = d[1][x] + d[2][x];
                    t2[x] = d[2][x] - d[1][x];
                    t3[x] = d[1][x] - d[3][x];
                }
                let first_tile = c * row_len + i * tiling.tiles() + ty * tiles_wide;
                for (k, t) in band.iter().enumerate() {
                    let at = |j: usize| (k * ALPHA + j) * xi_stride + first_tile;
                    for tx in 0..tiles_wide {
                        let [a, b, c, d] = [0, 1, 2, 3].map(|s| t[M * tx + s]);
                        v[at(0) + tx] = a - c;
                        v[at(1) + tx] = b + c;
                        v[at(2) + tx] = c - b;
                        v[at(3) + tx] = b - d;
                    }
                }
            }
        }
    }
}

/// Turns the products `m[ξ][O][row_len]` of a group back into output images, plus `bias`:
/// `Y = Aᵀ M A` for each tile with `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`, written out.
fn transform_outputs(
    m: &[f32],
    tiling: &Tiling,
    row_len: usize,
    bias: Option<&[f32]>,
    outputs: &mut [f32],
) {
    let (tiles_wide, width) = (tiling.tiles_wide, tiling.width);
    let plane = tiling.height * width;
    let xi_stride = tiling.channels_out * row_len;
    // Whole tiles go to an even-sized plane first; its valid part is then copied out.
    let mut tiled = vec![0.0; M * tiling.tiles_high * M * tiles_wide];
    let tiled_width = M * tiles_wide;
    for (i, output) in outputs.chunks_exact_mut(tiling.output_len()).enumerate() {
        for (o, channel) in output.chunks_exact_mut(plane).enumerate() {
            for ty in 0..tiling.tiles_high {
                let first_tile = o * row_len + i * tiling.tiles() + ty * tiles_wide;
                let rows: [&[f32]; XI] =
                    std::array::from_fn(|xi| &m[xi * xi_stride + first_tile..][..tiles_wide]);
                let (top, bottom) =
                    tiled[M * ty * tiled_width..][..M * tiled_width].split_at_mut(tiled_width);
                for tx in 0..tiles_wide {
                    let m: [f32; XI] = std::array::from_fn(|xi| rows[xi][tx]);
                    // Along each row of M: (m0 + m1 + m2, m1 - m2 - m3).
                    let p: [f32; ALPHA] =
                        std::array::from_fn(|k| m[k * ALPHA] + m[k * ALPHA + 1] + m[k * ALPHA + 2]);
                    let q: [f32; ALPHA] = std::array::from_fn(|k| {
                        m[k * ALPHA + 1] - m[k * ALPHA + 2] - m[k * ALPHA + 3]
                    });
                    top[M * tx] = p[0] + p[1] + p[2];
                    top[M * tx + 1] = q[0] + q[1] + q[2];
                    bottom[M * tx] = p[1] - p[2] - p[3];
                    bottom[M * tx + 1] = q[1] - q[2] - q[3];
                }
            }
            let b = bias.map_or(0.0, |bias| bias[o]);
            for (row, tiled_row) in channel
                .chunks_exact_mut(width)
                .zip(tiled.chunks(tiled_width))
            {
                for (dst, value) in row.iter_mut().zip(tiled_row) {
                    *dst = value + b;
                }
            }
        }
    }
}

/// Transforms every 2x2 output-gradient tile of a group of images into `w[ξ][O][row_len]`,
/// `A dY Aᵀ` with `A = [[1, 0], [1, 1], [1, -1], [0, -1]]` written out (positions past the
/// image's edge count as zero), and adds each channel's sum of `dy` to `bias`.
fn transform_output_grads(
    dy: &[f32],
    tiling: &Tiling,
    row_len: usize,
    w: &mut [f32],
    bias: &mut [f32],
) {
    let tiles_wide = tiling.tiles_wide;
    let plane = tiling.height * tiling.width;
    let xi_stride = tiling.channels_out * row_len;
    let mut padded = PaddedPlane::new(M * tiling.tiles_high, M * tiles_wide, 0);
    let mut band = [(); ALPHA].map(|_| vec![0.0; padded.width]);
    for (i, image) in dy.chunks_exact(tiling.output_len()).enumerate() {
        for ((o, channel), bias) in image.chunks_exact(plane).enumerate().zip(bias.iter_mut()) {
            *bias += channel.iter().sum::<f32>();
            padded.fill(channel, tiling.width);
            for ty in 0..tiling.tiles_high {
                let (a, b) = (padded.row(M * ty), padded.row(M * ty + 1));
                let [t0, t1, t2, t3] = &mut band;
                for x in 0..padded.width {
                    t0[x] = a[x];
                    t1[x] = a[x] + b[x];
                    t2[x] = a[x] - b[x];
                    t3[x] = -b[x];
                }
                let first_tile = o * row_len + i * tiling.tiles() + ty * tiles_wide;
                for (k, t) in band.iter().enumerate() {
                    let at = |j: usize| (k * ALPHA + j) * xi_stride + first_tile;
                    for tx in 0..tiles_wide {
                        let (p, q) = (t[M * tx], t[M * tx + 1]);
                        w[at(0) + tx] = p;
                        w[at(1) + tx] = p + q;
                        w[at(2) + tx] = p - q;
                        w[at(3) + tx] = -q;
                    }
                }
            }
        }
    }
}

/// Sums over a group's tiles for the weight gradient: `sums[ξ][O][C] += w[ξ][O][T] · v[ξ][C][T]ᵀ`.
fn accumulate_products(w: &[f32], v: &[f32], tiling: &Tiling, row_len: usize, sums: &mut [f32]) {
    let (c_in, c_out) = (tiling.channels_in, tiling.channels_out);
    for xi in 0..XI {
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

/// Transform-domain sums `[ξ][O][C]` back to kernel gradients `[O, C, 3, 3]`: `Gᵀ S G`.
fn inverse_transform_kernels(sums: &[f32], out_channels: usize, in_channels: usize) -> Vec<f32> {
    let pairs = out_channels * in_channels;
    let mut weight = vec![0.0; pairs * 9];
    for (pair, g) in weight.chunks_exact_mut(9).enumerate() {
        let s: [[f32; ALPHA]; ALPHA] =
            std::array::from_fn(|r| std::array::from_fn(|c| sums[(r * ALPHA + c) * pairs + pair]));
        g.copy_from_slice(sandwich(&GT, &s).as_flattened());
    }
    weight
}

/// One thread's transform buffers and its sums of the weight and bias gradients.
struct WeightGradSums {
    sums: Vec<f32>,
    bias: Vec<f32>,
    v: Vec<f32>,
    w: Vec<f32>,
}

impl WeightGradSums {
    fn new(tiling: &Tiling, images: usize) -> Self {
        let columns = images * tiling.tiles();
        Self {
            sums: vec![0.0; XI * tiling.channels_out * tiling.channels_in],
            bias: vec![0.0; tiling.channels_out],
            v: vec![0.0; XI * tiling.channels_in * columns],
            w: vec![0.0; XI * tiling.channels_out * columns],
        }
    }

    fn add(mut self, other: Self) -> Self {
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a += b;
        }
        for (a, b) in self.bias.iter_mut().zip(&other.bias) {
            *a += b;
        }
        self
    }
}

/// The weight gradient `[O, C, 3, 3]` and bias gradient `[O]` of a layer where [`applies`],
/// for the input `x` and the output gradient `dy`: `Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G`, the
/// sum over tiles being 16 GEMMs `[O, T] · [T, C]`.
pub fn weight_grad(x: &[f32], dy: &[f32], shape: &ConvShape) -> (Vec<f32>, Vec<f32>) {
    let tiling = Tiling::new(shape.channels_in, shape.channels_out, shape.input);
    let grouping = Grouping::for_columns(shape.batch, 4 * tiling.tiles());
    let groups = shape.batch.div_ceil(grouping.size);
    let total = x
        .par_chunks(grouping.size * tiling.input_len())
        .zip(dy.par_chunks(grouping.size * tiling.output_len()))
        .with_min_len(groups.div_ceil(rayon::current_num_threads()))
        .fold(
            || WeightGradSums::new(&tiling, grouping.size),
            |mut acc, (images, dy)| {
                let row_len = images.len() / tiling.input_len() * tiling.tiles();
                transform_inputs(images, &tiling, row_len, &mut acc.v);
                transform_output_grads(dy, &tiling, row_len, &mut acc.w, &mut acc.bias);
                accumulate_products(&acc.w, &acc.v, &tiling, row_len, &mut acc.sums);
                acc
            },
        )
        .reduce(|| WeightGradSums::new(&tiling, 0), WeightGradSums::add);
    let weight = inverse_transform_kernels(&total.sums, tiling.channels_out, tiling.channels_in);
    (weight, total.bias)
}

/// `x [B, C, H, W]` convolved with `weight [O, C, 3, 3]` (stride 1, padding 1) plus `bias`.
fn convolve(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    batch: usize,
    tiling: Tiling,
) -> Vec<f32> {
    let (c_in, c_out) = (tiling.channels_in, tiling.channels_out);
    let u = transform_kernels(weight, c_out, c_in);
    // Fewer tiles per GEMM than the im2col path uses: the 16 transformed tiles per channel
    // then stay in cache between the transforms and the GEMMs.
    let grouping = Grouping::for_columns(batch, 4 * tiling.tiles());
    let mut y = vec![0.0; batch * tiling.output_len()];
    y.par_chunks_mut(grouping.size * tiling.output_len())
        .zip(x.par_chunks(grouping.size * tiling.input_len()))
        .for_each_init(
            || {
                let columns = grouping.size * tiling.tiles();
                (
                    vec![0.0; XI * c_in * columns],
                    vec![0.0; XI * c_out * columns],
                )
            },
            |(v, m), (outputs, images)| {
                let row_len = images.len() / tiling.input_len() * tiling.tiles();
                transform_inputs(images, &tiling, row_len, v);
                for xi in 0..XI {
                    let u_xi = &u[xi * c_out * c_in..][..c_out * c_in];
                    let v_xi = &v[xi * c_in * row_len..][..c_in * row_len];
                    let m_xi = &mut m[xi * c_out * row_len..][..c_out * row_len];
                    // SAFETY: u_xi is [O, C], v_xi is [C, row_len], m_xi is [O, row_len].
                    unsafe {
                        matmul(
                            [c_out, row_len, c_in],
                            m_xi,
                            false,
                            (u_xi, 1, c_in),
                            (v_xi, 1, row_len),
                            grouping.parallelism,
                        )
                    };
                }
                transform_outputs(m, &tiling, row_len, bias, outputs);
            },
        );
    y
}

/// The convolution of [`super::conv_kernels::forward`] for a layer where [`applies`].
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: &ConvShape) -> Vec<f32> {
    let tiling = Tiling::new(shape.channels_in, shape.channels_out, shape.input);
    convolve(x, weight, bias, shape.batch, tiling)
}

/// The input gradient for `dy [B, O, H, W]`: `dy` convolved with the kernels flipped in space
/// and with their channel axes swapped, `[C, O, 3, 3]`.
pub fn input_grad(dy: &[f32], weight: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (c_in, c_out) = (shape.channels_in, shape.channels_out);
    let mut flipped = vec![0.0; weight.len()];
    for o in 0..c_out {
        for c in 0..c_in {
            for k in 0..9 {
                flipped[(c * c_out + o) * 9 + 8 - k] = weight[(o * c_in + c) * 9 + k];
            }
        }
    }
    let tiling = Tiling::new(c_out, c_in, shape.input);
    convolve(dy, &flipped, None, shape.batch, tiling)
}

#[cfg(test)]
mod tests {
    use super::super::conv_kernels;
    use super::*;

    /// Deterministic values in [-1, 1).
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

    fn shape(batch: usize, channels: [usize; 2], side: [usize; 2]) -> ConvShape {
        ConvShape {
            batch,
            channels_in: channels[0],
            input: side,
            channels_out: channels[1],
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            output: side,
        }
    }

    /// Winograd in f32 is accurate to a few 1e-6 of the largest value.
    fn tolerance(reference: &[f32]) -> f32 {
        1e-5 * reference.iter().fold(1.0f32, |m, v| m.max(v.abs()))
    }

    fn max_difference(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn matches_the_im2col_convolution_and_its_gradients() {
        // Even and odd sides (a partial last tile), several images per GEMM group.
        for (batch, channels, side) in [
            (5, [8, 6], [12, 12]),
            (3, [4, 7], [5, 7]),
            (1, [2, 3], [1, 2]),
        ] {
            let s = shape(batch, channels, side);
            assert!(applies(&s));
            let x = noise(batch * channels[0] * side[0] * side[1], 1);
            let weight = noise(s.weight_len(), 2);
            let bias = noise(channels[1], 3);
            let dy = noise(batch * channels[1] * side[0] * side[1], 4);
            let direct = conv_kernels::forward(&x, &weight, Some(&bias), &s);
            let fast = forward(&x, &weight, Some(&bias), &s);
            let diff = max_difference(&direct, &fast);
            assert!(
                diff < tolerance(&direct),
                "{batch} {channels:?} {side:?}: {diff}"
            );
            let direct = conv_kernels::backward(&x, &weight, &dy, &s, true)
                .x
                .unwrap();
            let fast = input_grad(&dy, &weight, &s);
            let diff = max_difference(&direct, &fast);
            assert!(
                diff < tolerance(&direct),
                "{batch} {channels:?} {side:?}: {diff}"
            );
            let direct = conv_kernels::backward(&x, &weight, &dy, &s, false);
            let (fast_weight, fast_bias) = weight_grad(&x, &dy, &s);
            for (name, direct, fast) in [
                ("weight", &direct.weight, &fast_weight),
                ("bias", &direct.bias, &fast_bias),
            ] {
                let diff = max_difference(direct, fast);
                assert!(
                    diff < tolerance(direct),
                    "{name} gradient {batch} {channels:?} {side:?}: {diff}"
                );
            }
        }
    }

    #[test]
    fn applies_only_to_same_size_3x3_stride_1() {
        let s = shape(1, [1, 1], [8, 8]);
        assert!(applies(&s));
        assert!(!applies(&ConvShape {
            stride: [2, 2],
            output: [4, 4],
            ..s
        }));
        assert!(!applies(&ConvShape {
            kernel: [5, 5],
            padding: [2, 2],
            ..s
        }));
        assert!(!applies(&ConvShape {
            padding: [0, 0],
            output: [6, 6],
            ..s
        }));
    }
}
