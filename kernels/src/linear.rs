//! The linear layer `y = x · W + b` on contiguous `f32` buffers (Burn's weight layout:
//! `[inputs, outputs]`), its products on [`crate::small_gemm`]: the forward pass and the input
//! gradient are products with a batch's few rows, where the `gemm` crate alone ran at 60% of
//! PyTorch's speed at batch 32.

use crate::small_gemm::{Operand, matmul, product};

/// The sizes of a linear layer applied to a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearShape {
    pub batch: usize,
    pub inputs: usize,
    pub outputs: usize,
}

/// `x[batch, inputs] · weight[inputs, outputs] + bias[outputs]`.
///
/// # Panics
/// If a buffer's length does not fit the shape.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: &LinearShape) -> Vec<f32> {
    assert_eq!(x.len(), s.batch * s.inputs, "input length");
    assert_eq!(weight.len(), s.inputs * s.outputs, "weight length");
    let mut y = match bias {
        Some(bias) => {
            assert_eq!(bias.len(), s.outputs, "bias length");
            bias.repeat(s.batch)
        }
        None => vec![0.0; s.batch * s.outputs],
    };
    let x = Operand::rows(x, s.inputs);
    let weight = Operand::rows(weight, s.outputs);
    matmul([s.batch, s.inputs, s.outputs], x, weight, &mut y, true);
    y
}

/// The gradients of a linear layer's loss.
pub struct Gradients {
    /// `dy · Wᵀ`, when asked for.
    pub x: Option<Vec<f32>>,
    /// `xᵀ · dy`, when asked for.
    pub weight: Option<Vec<f32>>,
    /// The column sums of `dy`, with the weight's.
    pub bias: Option<Vec<f32>>,
}

/// Which gradients a backward pass computes: a frozen layer's parameters want none (Grad-CAM's
/// network, fine-tuning's frozen layers), where the weight gradient was most of the work (the
/// `inputs x outputs` product written in full).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wanted {
    /// The input's.
    pub input: bool,
    /// The weight's and the bias's.
    pub parameters: bool,
}

/// The gradients given the output gradient `dy[batch, outputs]`.
///
/// # Panics
/// If a buffer's length does not fit the shape.
pub fn backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    s: &LinearShape,
    wanted: Wanted,
) -> Gradients {
    assert_eq!(x.len(), s.batch * s.inputs, "input length");
    assert_eq!(weight.len(), s.inputs * s.outputs, "weight length");
    assert_eq!(dy.len(), s.batch * s.outputs, "output gradient length");
    let dx = wanted.input.then(|| {
        let mut dx = vec![0.0; s.batch * s.inputs];
        let dy = Operand::rows(dy, s.outputs);
        let weight_t = Operand::transposed(weight, s.outputs);
        matmul([s.batch, s.outputs, s.inputs], dy, weight_t, &mut dx, false);
        dx
    });
    let weight_grad = wanted.parameters.then(|| {
        let x_t = Operand::transposed(x, s.inputs);
        let dy = Operand::rows(dy, s.outputs);
        product([s.inputs, s.batch, s.outputs], x_t, dy)
    });
    let bias = wanted.parameters.then(|| {
        let mut bias = vec![0.0; s.outputs];
        for row in dy.chunks_exact(s.outputs) {
            crate::im2col::add_assign(&mut bias, row);
        }
        bias
    });
    Gradients {
        x: dx,
        weight: weight_grad,
        bias,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(len: usize, scale: f32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919) % 23) as f32 * scale - 0.3)
            .collect()
    }

    /// Forward and backward against sums written out, at a batch the register tiles take.
    #[test]
    fn forward_and_gradients_match_the_sums() {
        let s = LinearShape {
            batch: 9,
            inputs: 70,
            outputs: 50,
        };
        let (x, w, b) = (ramp(9 * 70, 0.03), ramp(70 * 50, 0.02), ramp(50, 0.1));
        let dy = ramp(9 * 50, 0.05);
        let y = forward(&x, &w, Some(&b), &s);
        let all = Wanted {
            input: true,
            parameters: true,
        };
        let grads = backward(&x, &w, &dy, &s, all);
        let dx = grads.x.as_ref().expect("asked for");
        let (dw, db) = (
            grads.weight.expect("asked for"),
            grads.bias.expect("asked for"),
        );
        let close = |got: f32, want: f64| (got as f64 - want).abs() < 1e-4;
        for i in 0..s.batch {
            for o in 0..s.outputs {
                let want: f64 = (0..s.inputs)
                    .map(|k| x[i * s.inputs + k] as f64 * w[k * s.outputs + o] as f64)
                    .sum::<f64>()
                    + b[o] as f64;
                assert!(close(y[i * s.outputs + o], want), "y[{i}, {o}]");
            }
            for k in 0..s.inputs {
                let want: f64 = (0..s.outputs)
                    .map(|o| dy[i * s.outputs + o] as f64 * w[k * s.outputs + o] as f64)
                    .sum();
                assert!(close(dx[i * s.inputs + k], want), "dx[{i}, {k}]");
            }
        }
        for k in 0..s.inputs {
            for o in 0..s.outputs {
                let want: f64 = (0..s.batch)
                    .map(|i| x[i * s.inputs + k] as f64 * dy[i * s.outputs + o] as f64)
                    .sum();
                assert!(close(dw[k * s.outputs + o], want), "dW[{k}, {o}]");
            }
        }
        for o in 0..s.outputs {
            let want: f64 = (0..s.batch).map(|i| dy[i * s.outputs + o] as f64).sum();
            assert!(close(db[o], want), "db[{o}]");
        }
        let input_only = Wanted {
            parameters: false,
            ..all
        };
        let frozen = backward(&x, &w, &dy, &s, input_only);
        assert_eq!(frozen.x.as_ref(), Some(dx), "the same input gradient");
        assert!(frozen.weight.is_none() && frozen.bias.is_none());
        let no_input = Wanted {
            input: false,
            ..all
        };
        assert!(backward(&x, &w, &dy, &s, no_input).x.is_none());
    }
}
