//! Products with fewer rows than a register tile (a linear layer's forward pass at batch 1 to
//! 7: one request to a server), on both cores.
//!
//! Why: at one row the product reads every weight once and does two FLOPs per weight, so it is
//! bound by how fast the weight streams in from memory. The `gemm` crate splits the output
//! columns between the threads, so that each thread reads a short segment of every weight row,
//! far apart (6400x4096 took 5.0 ms on two cores of an Intel Xeon). Here each thread takes a
//! contiguous range of the depth instead, that is, whole weight rows one after the other: one
//! sequential stream per core, which the hardware prefetcher follows. Each thread sums into its
//! own `rows x n` buffer, and the buffers are added at the end (`n` values per row: nothing
//! beside the weight).

use std::ops::Range;

use rayon::prelude::*;

use crate::cpu::Isa;
use crate::scratch::Scratch;
use crate::small_gemm::Operand;

/// Weight rows one pass over the output takes together: four multiply-adds per output value
/// loaded and stored.
const ROWS_AT_ONCE: usize = 4;
/// Output columns per chunk: four weight rows of 512 values (8 KiB) stay in the L1 cache while
/// each of the few input rows passes over them.
const CHUNK: usize = 512;

/// `c[m, n] (+)= a[m, k] · b[k, n]` with `b` contiguous along its rows, `m` small; `isa` is an
/// instruction set this CPU has.
///
/// # Panics
/// If an operand is too short for the sizes (checked by the caller, `small_gemm::matmul`).
pub(crate) fn matmul(
    isa: Isa,
    [m, k, n]: [usize; 3],
    a: Operand,
    b: Operand,
    c: &mut [f32],
    accumulate: bool,
) {
    assert_eq!(b.col_stride, 1, "b's rows are contiguous");
    let parts = rayon::current_num_threads().clamp(1, k.div_ceil(ROWS_AT_ONCE));
    let sums: Vec<Scratch> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let depth = part * k / parts..(part + 1) * k / parts;
            let mut sum = Scratch::new(m * n);
            // SAFETY: `isa` is one this CPU has (the caller's `Isa::best`).
            unsafe { partial(isa, (m, n), &a, &b, depth, &mut sum[..m * n]) };
            sum
        })
        .collect();
    let c = &mut c[..m * n];
    if !accumulate {
        c.copy_from_slice(&sums[0][..m * n]);
    }
    let skip = usize::from(!accumulate);
    for sum in &sums[skip..] {
        for (c, s) in c.iter_mut().zip(&sum[..m * n]) {
            *c += s;
        }
    }
}

/// `out[m, n] = a[m, depth] · b[depth, n]`, compiled for `isa`'s vectors.
///
/// # Safety
/// The CPU has `isa`'s instructions.
unsafe fn partial(
    isa: Isa,
    shape: (usize, usize),
    a: &Operand,
    b: &Operand,
    depth: Range<usize>,
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match isa {
            Isa::Avx512 => partial_avx512(shape, a, b, depth, out),
            Isa::Avx2 => partial_avx2(shape, a, b, depth, out),
        }
    }
}

#[target_feature(enable = "avx512f,fma")]
unsafe fn partial_avx512(
    shape: (usize, usize),
    a: &Operand,
    b: &Operand,
    depth: Range<usize>,
    out: &mut [f32],
) {
    partial_body(shape, a, b, depth, out);
}

#[target_feature(enable = "avx2,fma")]
unsafe fn partial_avx2(
    shape: (usize, usize),
    a: &Operand,
    b: &Operand,
    depth: Range<usize>,
    out: &mut [f32],
) {
    partial_body(shape, a, b, depth, out);
}

/// The loops, inlined into each instruction set's function, where the compiler vectorises the
/// innermost one with that set's vectors and fused multiply-adds.
#[inline(always)]
fn partial_body(
    (m, n): (usize, usize),
    a: &Operand,
    b: &Operand,
    depth: Range<usize>,
    out: &mut [f32],
) {
    out.fill(0.0);
    let a_at = |i: usize, p: usize| a.values[i * a.row_stride + p * a.col_stride];
    let b_row = |p: usize| &b.values[p * b.row_stride..][..n];
    let mut p = depth.start;
    while p < depth.end {
        let take = ROWS_AT_ONCE.min(depth.end - p);
        for j in (0..n).step_by(CHUNK) {
            let cols = j..n.min(j + CHUNK);
            for i in 0..m {
                let o = &mut out[i * n..][cols.clone()];
                if take == ROWS_AT_ONCE {
                    let w = [a_at(i, p), a_at(i, p + 1), a_at(i, p + 2), a_at(i, p + 3)];
                    let (b0, b1) = (&b_row(p)[cols.clone()], &b_row(p + 1)[cols.clone()]);
                    let (b2, b3) = (&b_row(p + 2)[cols.clone()], &b_row(p + 3)[cols.clone()]);
                    let rows = b0.iter().zip(b1).zip(b2).zip(b3);
                    for (o, (((b0, b1), b2), b3)) in o.iter_mut().zip(rows) {
                        let s = b0.mul_add(w[0], *o);
                        let s = b1.mul_add(w[1], s);
                        let s = b2.mul_add(w[2], s);
                        *o = b3.mul_add(w[3], s);
                    }
                } else {
                    for q in p..p + take {
                        let (w, row) = (a_at(i, q), &b_row(q)[cols.clone()]);
                        for (o, b) in o.iter_mut().zip(row) {
                            *o = b.mul_add(w, *o);
                        }
                    }
                }
            }
        }
        p += take;
    }
}
