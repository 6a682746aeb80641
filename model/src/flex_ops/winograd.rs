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
//! flipped and their channel axes swapped), so it takes this path too.

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

/// `Bᵀ`: input tile to transform domain.
const BT: [[f32; ALPHA]; ALPHA] = [
    [1.0, 0.0, -1.0, 0.0],
    [0.0, 1.0, 1.0, 0.0],
    [0.0, -1.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, -1.0],
];

/// `G`: kernel to transform domain.
const G: [[f32; 3]; ALPHA] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// `Aᵀ`: transform domain to output tile.
const AT: [[f32; ALPHA]; M] = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];

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

/// Transforms every input tile of a group of images into `v[ξ][C][row_len]`.
fn transform_inputs(images: &[f32], tiling: &Tiling, row_len: usize, v: &mut [f32]) {
    let (h, w) = (tiling.height as isize, tiling.width as isize);
    let plane = tiling.height * tiling.width;
    let xi_stride = tiling.channels_in * row_len;
    for (i, image) in images.chunks_exact(tiling.input_len()).enumerate() {
        for (c, channel) in image.chunks_exact(plane).enumerate() {
            let at = |y: isize, x: isize| match (0..h).contains(&y) && (0..w).contains(&x) {
                true => channel[(y * w + x) as usize],
                false => 0.0,
            };
            for ty in 0..tiling.tiles_high {
                for tx in 0..tiling.tiles_wide {
                    let (top, left) = ((M * ty) as isize - 1, (M * tx) as isize - 1);
                    let d: [[f32; ALPHA]; ALPHA] = std::array::from_fn(|r| {
                        std::array::from_fn(|s| at(top + r as isize, left + s as isize))
                    });
                    let tile = i * tiling.tiles() + ty * tiling.tiles_wide + tx;
                    let column = c * row_len + tile;
                    let transformed = sandwich(&BT, &d);
                    for (xi, value) in transformed.as_flattened().iter().enumerate() {
                        v[xi * xi_stride + column] = *value;
                    }
                }
            }
        }
    }
}

/// Turns the products `m[ξ][O][row_len]` of a group back into output images, plus `bias`.
fn transform_outputs(
    m: &[f32],
    tiling: &Tiling,
    row_len: usize,
    bias: Option<&[f32]>,
    outputs: &mut [f32],
) {
    let plane = tiling.height * tiling.width;
    let xi_stride = tiling.channels_out * row_len;
    for (i, output) in outputs.chunks_exact_mut(tiling.output_len()).enumerate() {
        for (o, channel) in output.chunks_exact_mut(plane).enumerate() {
            let b = bias.map_or(0.0, |bias| bias[o]);
            for ty in 0..tiling.tiles_high {
                for tx in 0..tiling.tiles_wide {
                    let tile = i * tiling.tiles() + ty * tiling.tiles_wide + tx;
                    let column = o * row_len + tile;
                    let products: [[f32; ALPHA]; ALPHA] = std::array::from_fn(|r| {
                        std::array::from_fn(|s| m[(r * ALPHA + s) * xi_stride + column])
                    });
                    let y = sandwich(&AT, &products);
                    for (r, row) in y.iter().enumerate() {
                        for (s, value) in row.iter().enumerate() {
                            let (oy, ox) = (M * ty + r, M * tx + s);
                            if oy < tiling.height && ox < tiling.width {
                                channel[oy * tiling.width + ox] = value + b;
                            }
                        }
                    }
                }
            }
        }
    }
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
    fn matches_the_im2col_convolution_and_its_input_gradient() {
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
