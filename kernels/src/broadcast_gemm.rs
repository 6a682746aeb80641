//! Products with a right-hand side given transposed, `c = a · bᵀ`, for 8 to 64 rows of `a`: a
//! linear layer's input gradient `dY · Wᵀ` at batch 8-64, with AVX-512.
//!
//! Why not dot products of `a`'s rows with `b`'s (`small_gemm`'s path for these operands
//! without AVX-512): each output ends in a horizontal sum, and every tile of them reads its
//! rows of `a` again from the L2 cache. fc2's input gradient at batch 32 took 10.8-11.0 ms
//! that way, twice its forward pass's 7 ms for the same products; this way 4.5-5.1 ms (fc1's
//! 21 -> 11 ms; batch 8 to 64 all faster, on two cores of an Intel Xeon, family 6 model 167).
//! Here the batch lies along the vector lanes instead: `a`
//! is copied once as `aᵀ` (`[k][lanes]`, the rows padded with zeros to a multiple of 16), and
//! a register tile of `R` rows of `b` (output columns) by `V` vectors of lanes broadcasts one
//! value of each of its rows of `b` per step against the `V` vectors of that step's `aᵀ`. Every
//! value of `b` is read once, in `R` sequential streams; the sums are scattered into `c`.

use rayon::prelude::*;

use crate::scratch::Scratch;
use crate::shared_output::Output;
use crate::small_gemm::Operand;

/// Lanes of an AVX-512 vector.
const LANES: usize = 16;

/// `c[m, n] (+)= a[m, k] · b[k, n]` where `b` is given transposed (contiguous along `k`), `a`
/// contiguous along `k`, `m` up to 64, on a CPU with AVX-512 (the caller's `Path` checks).
///
/// # Panics
/// If an operand is too short for the sizes (checked by the caller, `small_gemm::matmul`).
pub(crate) fn matmul(
    [m, k, n]: [usize; 3],
    a: Operand,
    b: Operand,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(a.col_stride == 1 && b.row_stride == 1 && (1..=4 * LANES).contains(&m));
    let lanes = m.next_multiple_of(LANES);
    let a_t = transposed(&a, [m, k], lanes);
    let rows = rows_per_tile(lanes / LANES);
    let out = Output(c.as_mut_ptr());
    (0..n.div_ceil(rows)).into_par_iter().for_each(|tile| {
        let first = tile * rows;
        let tile = Tile {
            columns: first..(first + rows).min(n),
            rows: m,
            accumulate,
        };
        let b_rows = &b.values[first * b.col_stride..];
        // SAFETY: `b` holds k values from each of the tile's columns (`matmul`'s check), `a_t`
        // k x lanes, and this task alone writes the tile's columns of `c` (`m x n`).
        unsafe { avx512::tile(&tile, (&a_t, lanes), (b_rows, b.col_stride, k), (out, n)) };
    });
}

/// Rows of `b` per register tile for `vectors` vectors of lanes: 24 sums, with room left for
/// the step's vectors and one broadcast value in the 32 registers.
fn rows_per_tile(vectors: usize) -> usize {
    match vectors {
        1 | 2 => 12,
        3 => 8,
        _ => 6,
    }
}

/// `a [m, k]` as `[k][lanes]`, zero past row `m`.
fn transposed(a: &Operand, [m, k]: [usize; 2], lanes: usize) -> Scratch {
    let mut a_t = Scratch::new(k * lanes);
    let a_t_values = &mut a_t[..k * lanes];
    a_t_values.fill(0.0);
    for i in 0..m {
        let row = &a.values[i * a.row_stride..][..k];
        for (p, value) in row.iter().enumerate() {
            a_t_values[p * lanes + i] = *value;
        }
    }
    a_t
}

/// The output columns one tile writes, for the first `rows` rows of `c`.
struct Tile {
    columns: std::ops::Range<usize>,
    rows: usize,
    accumulate: bool,
}

mod avx512 {
    use std::arch::x86_64::*;

    use super::{LANES, Tile};
    use crate::shared_output::Output;

    /// Dispatches to the tile compiled for the lane vectors' count.
    ///
    /// # Safety
    /// The CPU has AVX-512; `b` holds `depth` values from each of the tile's columns
    /// (`column_stride` apart), `a_t` `depth` rows of `lanes`, and `c` (`n` columns) the
    /// tile's rows and columns, which no other thread writes meanwhile.
    pub(super) unsafe fn tile(
        tile: &Tile,
        (a_t, lanes): (&[f32], usize),
        (b, column_stride, depth): (&[f32], usize, usize),
        (c, n): (Output, usize),
    ) {
        let width = tile.columns.len();
        assert!(
            a_t.len() >= depth * lanes
                && b.len() > (width - 1) * column_stride + depth - 1
                && tile.rows <= lanes
        );
        let args = (
            tile,
            a_t.as_ptr(),
            lanes,
            b.as_ptr(),
            column_stride,
            depth,
            c,
            n,
        );
        // SAFETY: forwarded from the caller; the extents are checked above.
        unsafe {
            match lanes / LANES {
                1 => of::<12, 1>(args),
                2 => of::<12, 2>(args),
                3 => of::<8, 3>(args),
                _ => of::<6, 4>(args),
            }
        }
    }

    type Args<'a> = (
        &'a Tile,
        *const f32,
        usize,
        *const f32,
        usize,
        usize,
        Output,
        usize,
    );

    #[target_feature(enable = "avx512f")]
    unsafe fn of<const R: usize, const V: usize>(
        (tile, a_t, lanes, b, column_stride, depth, c, n): Args,
    ) {
        let width = tile.columns.len();
        // Columns past the tile's width repeat its last one; their sums are never stored.
        let b_rows: [*const f32; R] =
            std::array::from_fn(|r| b.wrapping_add(r.min(width - 1) * column_stride));
        let mut sums = [[_mm512_setzero_ps(); V]; R];
        for p in 0..depth {
            // SAFETY: the caller keeps `depth` values of each column and rows of `a_t`.
            unsafe {
                let x: [__m512; V] =
                    std::array::from_fn(|v| _mm512_loadu_ps(a_t.add(p * lanes + v * LANES)));
                for (sums, row) in sums.iter_mut().zip(b_rows) {
                    let w = _mm512_set1_ps(*row.add(p));
                    for (sum, x) in sums.iter_mut().zip(x) {
                        *sum = _mm512_fmadd_ps(w, x, *sum);
                    }
                }
            }
        }
        let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let offsets = _mm512_mullo_epi32(lane, _mm512_set1_epi32(n as i32));
        for (r, sums) in sums.iter().enumerate().take(width) {
            for (v, sum) in sums.iter().enumerate() {
                let live = tile.rows.saturating_sub(v * LANES).min(LANES);
                if live == 0 {
                    break;
                }
                let mask = (u32::MAX >> (32 - live)) as __mmask16;
                // SAFETY: rows v·16.. of column `first + r` lie in `c` for the live lanes.
                unsafe {
                    let at = c.at(v * LANES * n + tile.columns.start + r);
                    let value = match tile.accumulate {
                        true => _mm512_add_ps(
                            *sum,
                            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, offsets, at),
                        ),
                        false => *sum,
                    };
                    _mm512_mask_i32scatter_ps::<4>(at, mask, offsets, value);
                }
            }
        }
    }
}
