//! Products as deep as a batch (up to 64) with many rows, `c = aᵀ · b` read from `a` stored
//! `[k][m]`: a linear layer's weight gradient `Xᵀ · dY`, with AVX-512.
//!
//! Such a product writes `m x n` values (151 MB for torchvision's fc1) from only `k` products
//! each: it is bound by writing them. Here a register tile of 8 rows by 48 columns sums all `k`
//! products of its outputs at once, broadcasting `a`'s values (8 neighbours in one row of `X`)
//! against vectors of `b`'s rows, and writes each output once, into memory that need not be
//! zeroed first ([`product`]). On two cores of an Intel Xeon (family 6 model 167) at batch 32,
//! the backward pass of torchvision's fc1 (both gradients) took 37-39 ms with the `gemm` crate
//! writing into a zeroed buffer, 35-36 with this tile into a zeroed one, 19-22 with this tile
//! and no zeroing; fc2's 17-18 -> 8.6-9.3 ms.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::shared_output::Output;
use crate::small_gemm::Operand;

/// Rows of `c` per register tile.
const ROWS: usize = 8;
/// Columns of `c` per register tile: three 16-lane vectors (24 sums).
const COLUMNS: usize = 48;
/// The deepest product this module takes: a batch of 64.
pub(crate) const MAX_DEPTH: usize = 64;

/// `c[m, n] (+)= a[m, k] · b[k, n]` where `a` is contiguous along `m` (the transpose of a
/// row-major `[k, m]`), `b` along `n`, `k` up to [`MAX_DEPTH`], on a CPU with AVX-512 (the
/// caller's `Path` checks).
///
/// # Panics
/// If an operand is too short for the sizes (checked by the caller, `small_gemm::matmul`).
pub(crate) fn matmul(dims: [usize; 3], a: Operand, b: Operand, c: &mut [f32], accumulate: bool) {
    assert!(c.len() >= dims[0] * dims[2]);
    // SAFETY: `c` holds the m x n output and is exclusively borrowed.
    unsafe { run(dims, a, b, Output(c.as_mut_ptr()), accumulate) }
}

/// [`matmul`] into memory not yet written: every one of the `m x n` values is written, none
/// read.
pub(crate) fn product(dims: [usize; 3], a: Operand, b: Operand, c: &mut [MaybeUninit<f32>]) {
    assert!(c.len() >= dims[0] * dims[2]);
    // SAFETY: `c` holds the m x n output and is exclusively borrowed; without `accumulate`
    // nothing reads it.
    unsafe { run(dims, a, b, Output(c.as_mut_ptr().cast()), false) }
}

/// # Safety
/// `c` points to `m x n` values that no other thread touches meanwhile, written before they
/// are read when `accumulate` is set.
unsafe fn run([m, k, n]: [usize; 3], a: Operand, b: Operand, c: Output, accumulate: bool) {
    assert!(a.row_stride == 1 && b.col_stride == 1 && (1..=MAX_DEPTH).contains(&k));
    // One task per block of rows of `c`, written whole: its rows lie side by side.
    (0..m.div_ceil(ROWS)).into_par_iter().for_each(|block| {
        let first = block * ROWS;
        let rows = ROWS.min(m - first);
        for column in (0..n).step_by(COLUMNS) {
            let tile = Tile {
                rows,
                width: COLUMNS.min(n - column),
                depth: k,
                accumulate,
            };
            // SAFETY: `small_gemm` checked that `a` covers m x k and `b` k x n; this task
            // alone writes rows first.. of `c` (m x n, the caller's).
            unsafe {
                avx512::tile(
                    &tile,
                    (a.values.as_ptr().add(first), a.col_stride),
                    (b.values.as_ptr().add(column), b.row_stride),
                    (c.at(first * n + column), n),
                )
            };
        }
    });
}

/// The part of `c` one register tile writes.
struct Tile {
    rows: usize,
    width: usize,
    depth: usize,
    accumulate: bool,
}

mod avx512 {
    use std::arch::x86_64::*;

    use super::{ROWS, Tile};

    /// `c[rows, width] (+)= Σ_p a[p][rows] ⊗ b[p][width]` over `depth` steps.
    ///
    /// # Safety
    /// The CPU has AVX-512; `a` (steps `a_step` apart) holds `rows` values per step, `b`
    /// (`b_step` apart) `width`, and `c` (rows `ldc` apart) `rows x width`, which no other
    /// thread writes meanwhile.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile(
        tile: &Tile,
        (a, a_step): (*const f32, usize),
        (b, b_step): (*const f32, usize),
        (c, ldc): (*mut f32, usize),
    ) {
        let masks: [__mmask16; 3] = std::array::from_fn(|v| {
            let live = tile.width.saturating_sub(v * 16).min(16);
            ((1u32 << live) - 1) as __mmask16
        });
        let mut sums = [[_mm512_setzero_ps(); 3]; ROWS];
        for p in 0..tile.depth {
            // SAFETY: the caller keeps `rows` values of `a` and `width` of `b` in each step;
            // rows past `rows` read the last one again, lanes past `width` are masked.
            unsafe {
                let (a, b) = (a.add(p * a_step), b.add(p * b_step));
                let x: [__m512; 3] =
                    std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], b.add(16 * v)));
                for (r, sums) in sums.iter_mut().enumerate() {
                    let w = _mm512_set1_ps(*a.add(r.min(tile.rows - 1)));
                    for (sum, x) in sums.iter_mut().zip(x) {
                        *sum = _mm512_fmadd_ps(w, x, *sum);
                    }
                }
            }
        }
        for (r, sums) in sums.iter().enumerate().take(tile.rows) {
            for (v, sum) in sums.iter().enumerate() {
                // SAFETY: `c` covers `rows x width`; the mask keeps to the width.
                unsafe {
                    let dst = c.add(r * ldc + 16 * v);
                    let value = match tile.accumulate {
                        true => _mm512_add_ps(*sum, _mm512_maskz_loadu_ps(masks[v], dst)),
                        false => *sum,
                    };
                    _mm512_mask_storeu_ps(dst, masks[v], value);
                }
            }
        }
    }
}
