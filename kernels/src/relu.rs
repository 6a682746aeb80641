//! ReLU in one pass each way, in place where the caller owns the buffer. NaN passes through, as
//! in Burn and PyTorch.

use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 16;

fn relu(x: f32) -> f32 {
    if x <= 0.0 { 0.0 } else { x }
}

fn gate(dy: f32, y: f32) -> f32 {
    if y <= 0.0 { 0.0 } else { dy }
}

/// `x = max(x, 0)`.
pub fn forward_in_place(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK)
        .for_each(|chunk| chunk.iter_mut().for_each(|v| *v = relu(*v)));
}

/// `max(x, 0)` into a new buffer.
pub fn forward(x: &[f32]) -> Vec<f32> {
    x.par_iter().with_min_len(CHUNK).map(|v| relu(*v)).collect()
}

/// `dy = dy` where the output `y > 0` (or NaN), else 0.
pub fn backward_in_place(dy: &mut [f32], y: &[f32]) {
    dy.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK))
        .for_each(|(dy, y)| dy.iter_mut().zip(y).for_each(|(g, y)| *g = gate(*g, *y)));
}

/// The gated gradient into a new buffer.
pub fn backward(dy: &[f32], y: &[f32]) -> Vec<f32> {
    dy.par_iter()
        .zip(y)
        .with_min_len(CHUNK)
        .map(|(g, y)| gate(*g, *y))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_agree_and_nan_passes_through() {
        let x = [f32::NAN, -1.0, 0.0, 2.0];
        let y = forward(&x);
        assert!(y[0].is_nan());
        assert_eq!(&y[1..], &[0.0, 0.0, 2.0]);
        let mut in_place = x;
        forward_in_place(&mut in_place);
        assert!(in_place[0].is_nan() && in_place[1..] == y[1..]);
    }

    #[test]
    fn gradients_flow_where_the_output_is_positive() {
        let (dy, y) = ([1.0, 2.0, 3.0, 4.0], [f32::NAN, 0.0, -0.0, 5.0]);
        assert_eq!(backward(&dy, &y), vec![1.0, 0.0, 0.0, 4.0]);
        let mut in_place = dy;
        backward_in_place(&mut in_place, &y);
        assert_eq!(in_place, [1.0, 0.0, 0.0, 4.0]);
    }
}
