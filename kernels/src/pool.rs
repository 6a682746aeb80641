//! Max-pooling on contiguous `f32` NCHW buffers, with the argmax kept for the backward pass.
//! NaN wins a window and ties keep the first in row-major order, as in Burn and PyTorch.

use rayon::prelude::*;

/// The sizes of one max-pooling without padding, dilation or ceil mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// Batch times channels.
    pub planes: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Output height and width.
    pub output: [usize; 2],
}

impl PoolShape {
    /// The shape of pooling `planes` planes of `input` size; `None` when a window does not fit.
    pub fn new(
        planes: usize,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> Option<Self> {
        let out = |axis: usize| {
            input[axis]
                .checked_sub(kernel[axis])
                .map(|span| span / stride[axis] + 1)
        };
        Some(Self {
            planes,
            input,
            kernel,
            stride,
            output: [out(0)?, out(1)?],
        })
    }

    fn input_plane(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn output_plane(&self) -> usize {
        self.output[0] * self.output[1]
    }
}

/// The maxima of `x`, and where in its input plane each one was.
pub fn forward(x: &[f32], s: &PoolShape) -> (Vec<f32>, Vec<u32>) {
    let mut y = vec![0.0; s.planes * s.output_plane()];
    let mut argmax = vec![0u32; y.len()];
    y.par_chunks_mut(s.output_plane())
        .zip(argmax.par_chunks_mut(s.output_plane()))
        .zip(x.par_chunks(s.input_plane()))
        .for_each(|((y, argmax), plane)| pool_plane(plane, s, y, argmax));
    (y, argmax)
}

/// The maxima of `x` without their positions, for inference: a row pass then a column pass
/// over whole rows, which the compiler vectorises, instead of tracking each window's argmax.
/// The same values as [`forward`], NaN included.
pub fn forward_values(x: &[f32], s: &PoolShape) -> Vec<f32> {
    let mut y = vec![0.0; s.planes * s.output_plane()];
    y.par_chunks_mut(s.output_plane())
        .zip(x.par_chunks(s.input_plane()))
        .for_each(|(y, plane)| max_plane(plane, s, y));
    y
}

/// `b` when it is larger than `a` or NaN, else `a`: the maximum, NaN winning, ties keeping
/// the first (as [`beats`]).
#[inline(always)]
fn later_max(a: f32, b: f32) -> f32 {
    if b > a || b.is_nan() { b } else { a }
}

fn max_plane(plane: &[f32], s: &PoolShape, y: &mut [f32]) {
    let out_w = s.output[1];
    let [in_h, width] = s.input;
    // Each input row's maxima over the windows' columns.
    let mut rows = vec![0.0f32; in_h * out_w];
    for (row, maxima) in plane.chunks_exact(width).zip(rows.chunks_exact_mut(out_w)) {
        for (ox, max) in maxima.iter_mut().enumerate() {
            let window = &row[ox * s.stride[1]..ox * s.stride[1] + s.kernel[1]];
            *max = window[1..].iter().fold(window[0], |m, &v| later_max(m, v));
        }
    }
    // Then the maxima over the windows' rows, a whole output row at a time.
    for (oy, out) in y.chunks_exact_mut(out_w).enumerate() {
        let top = oy * s.stride[0];
        out.copy_from_slice(&rows[top * out_w..(top + 1) * out_w]);
        for r in top + 1..top + s.kernel[0] {
            for (o, &v) in out.iter_mut().zip(&rows[r * out_w..(r + 1) * out_w]) {
                *o = later_max(*o, v);
            }
        }
    }
}

/// The input gradient: each output's gradient goes to its window's maximum.
pub fn backward(dy: &[f32], argmax: &[u32], s: &PoolShape) -> Vec<f32> {
    let mut dx = vec![0.0; s.planes * s.input_plane()];
    dx.par_chunks_mut(s.input_plane())
        .zip(dy.par_chunks(s.output_plane()))
        .zip(argmax.par_chunks(s.output_plane()))
        .for_each(|((dx, dy), argmax)| {
            for (dy, at) in dy.iter().zip(argmax) {
                dx[*at as usize] += dy;
            }
        });
    dx
}

/// Whether `candidate` replaces `best` as a window's maximum: larger, or the first NaN. Ties
/// keep the first in row-major order, as Burn's and PyTorch's pooling do.
fn beats(candidate: f32, best: f32) -> bool {
    candidate > best || (candidate.is_nan() && !best.is_nan())
}

fn pool_plane(plane: &[f32], s: &PoolShape, y: &mut [f32], argmax: &mut [u32]) {
    let [out_h, out_w] = s.output;
    let width = s.input[1];
    for oy in 0..out_h {
        for ox in 0..out_w {
            let (top, left) = (oy * s.stride[0], ox * s.stride[1]);
            let mut best = (f32::NEG_INFINITY, top * width + left);
            for row in top..top + s.kernel[0] {
                let start = row * width + left;
                for (offset, &value) in plane[start..start + s.kernel[1]].iter().enumerate() {
                    if beats(value, best.0) {
                        best = (value, start + offset);
                    }
                }
            }
            y[oy * out_w + ox] = best.0;
            argmax[oy * out_w + ox] = best.1 as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_windows_take_maxima_and_add_gradients() {
        // One 3x3 plane, 2x2 windows with stride 1: four overlapping windows.
        let x = [1.0, 5.0, 2.0, 0.0, 3.0, 9.0, 4.0, 4.0, 1.0];
        let s = PoolShape::new(1, [3, 3], [2, 2], [1, 1]).unwrap();
        let (y, argmax) = forward(&x, &s);
        assert_eq!(y, vec![5.0, 9.0, 4.0, 9.0]);
        assert_eq!(argmax, vec![1, 5, 6, 5]);
        let dx = backward(&[1.0, 2.0, 3.0, 4.0], &argmax, &s);
        assert_eq!(dx, vec![0.0, 1.0, 0.0, 0.0, 0.0, 6.0, 3.0, 0.0, 0.0]);
    }

    #[test]
    fn nan_wins_and_ties_keep_the_first() {
        let s = PoolShape::new(2, [1, 3], [1, 3], [1, 1]).unwrap();
        let (y, argmax) = forward(&[1.0, f32::NAN, 7.0, 2.0, 2.0, 2.0], &s);
        assert!(y[0].is_nan());
        assert_eq!((y[1], argmax.clone()), (2.0, vec![1, 0]));
    }

    #[test]
    fn values_alone_equal_the_forward_pass_bit_for_bit() {
        let s = PoolShape::new(6, [13, 11], [3, 3], [2, 2]).unwrap();
        let mut state = 7u32;
        let mut x: Vec<f32> = (0..6 * 13 * 11)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Few distinct values, so that windows hold ties (and signed zeros).
                ((state >> 28) as f32 - 8.0) * 0.5
            })
            .collect();
        x[20] = -0.0;
        x[40] = f32::NAN;
        x[41] = f32::INFINITY;
        let expected = forward(&x, &s).0;
        let got = forward_values(&x, &s);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&expected));
        assert!(got.iter().any(|v| v.is_nan()));
    }

    #[test]
    fn windows_larger_than_the_input_have_no_shape() {
        assert_eq!(PoolShape::new(1, [2, 5], [3, 3], [2, 2]), None);
        let s = PoolShape::new(4, [13, 13], [3, 3], [2, 2]).unwrap();
        assert_eq!(s.output, [6, 6]);
    }
}
