//! Pillow's two passes over an image, written once and compiled for AVX-512, for AVX2 and for
//! the baseline instruction set, the best one this CPU has picked at run time (a release build
//! targets the baseline, which has no 32-bit vector multiply on x86-64). Sums of integers do not
//! depend on their order, so every version writes the same bytes; the tests check each one
//! the CPU has against the baseline.

use super::{HALF, Resize, Taps, clip8};

/// The instruction sets the passes are compiled for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Lanes {
    /// 16 lanes of 32 bits (Intel Xeon, AMD Zen 4 and 5).
    Avx512,
    /// 8 lanes of 32 bits (x86-64 from Haswell and Zen 1 on).
    Avx2,
    /// What every CPU of the target has.
    Baseline,
}

impl Lanes {
    /// Every set, best first.
    #[cfg(test)]
    pub(super) const ALL: [Self; 3] = [Self::Avx512, Self::Avx2, Self::Baseline];

    /// The best set this CPU has.
    pub(super) fn best() -> Self {
        [Self::Avx512, Self::Avx2]
            .into_iter()
            .find(|lanes| lanes.detected())
            .unwrap_or(Self::Baseline)
    }

    /// Whether this CPU has the set (a cached flag after the first call).
    pub(super) fn detected(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Self::Avx512 => has!("avx512f") && has!("avx512bw"),
                Self::Avx2 => has!("avx2"),
                Self::Baseline => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        matches!(self, Self::Baseline)
    }
}

/// Resizes `pixels` (`channels` interleaved, 1 or 3) into `channels` planes of `out`, with the
/// passes compiled for `lanes` (the baseline's when the CPU lacks them).
pub(super) fn run(lanes: Lanes, resize: &Resize, pixels: &[u8], channels: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if lanes.detected() {
        match lanes {
            // SAFETY: the CPU has the instructions these versions are compiled for (checked
            // just above).
            Lanes::Avx512 => return unsafe { on_avx512(resize, pixels, channels, out) },
            Lanes::Avx2 => return unsafe { on_avx2(resize, pixels, channels, out) },
            Lanes::Baseline => {}
        }
    }
    both_passes(resize, pixels, channels, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn on_avx512(resize: &Resize, pixels: &[u8], channels: usize, out: &mut [f32]) {
    both_passes(resize, pixels, channels, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn on_avx2(resize: &Resize, pixels: &[u8], channels: usize, out: &mut [f32]) {
    both_passes(resize, pixels, channels, out);
}

/// Both passes in Pillow's order for this resize, the first one's result rounded to bytes as
/// Pillow rounds between its passes.
#[inline(always)]
fn both_passes(resize: &Resize, pixels: &[u8], channels: usize, out: &mut [f32]) {
    match resize.vertical_first {
        false => horizontal_then_vertical(resize, pixels, channels, out),
        true => vertical_then_horizontal(resize, pixels, channels, out),
    }
}

/// The horizontal pass into planar rows of bytes, over the input rows the vertical taps read,
/// then the vertical pass into `out`.
#[inline(always)]
fn horizontal_then_vertical(resize: &Resize, pixels: &[u8], channels: usize, out: &mut [f32]) {
    let (side, row_len) = (resize.side, resize.side * channels);
    let rows_read = resize.vertical.span();
    let stride = resize.width * channels;
    let src = &pixels[rows_read.start * stride..rows_read.end * stride];
    let mut rows = vec![0u8; rows_read.len() * row_len];
    horizontal_pass(&resize.horizontal, (channels, stride), src, &mut rows);
    let mut sums = vec![0i32; row_len];
    for (r, window) in resize.vertical.windows().enumerate() {
        vertical_sums(
            window,
            (&rows, row_len, rows_read.start),
            0..row_len,
            &mut sums,
        );
        let planes = out.chunks_exact_mut(side * side);
        for (plane, sums) in planes.zip(sums.chunks_exact(side)) {
            for (d, &s) in plane[r * side..(r + 1) * side].iter_mut().zip(sums) {
                *d = clip8(s) as f32 / 255.0;
            }
        }
    }
}

/// The vertical pass first, over the input columns the horizontal taps read, into rows of
/// bytes still interleaved, then the horizontal pass into planar rows, then `out`: Pillow 13's
/// order when the height loses more than twice as many pixels as the width.
#[inline(always)]
fn vertical_then_horizontal(resize: &Resize, pixels: &[u8], channels: usize, out: &mut [f32]) {
    let (side, stride) = (resize.side, resize.width * channels);
    let span = resize.horizontal.span();
    let columns = span.start * channels..span.end * channels;
    let mut rows = vec![0u8; side * stride];
    let mut sums = vec![0i32; stride];
    for (window, row) in resize.vertical.windows().zip(rows.chunks_exact_mut(stride)) {
        vertical_sums(window, (pixels, stride, 0), columns.clone(), &mut sums);
        for (d, &s) in row[columns.clone()].iter_mut().zip(&sums[columns.clone()]) {
            *d = clip8(s) as u8;
        }
    }
    let mut planar = vec![0u8; side * side * channels];
    horizontal_pass(&resize.horizontal, (channels, stride), &rows, &mut planar);
    for (c, plane) in out.chunks_exact_mut(side * side).enumerate() {
        let rows = planar.chunks_exact(side * channels);
        for (dst, row) in plane.chunks_exact_mut(side).zip(rows) {
            for (d, &b) in dst.iter_mut().zip(&row[c * side..(c + 1) * side]) {
                *d = b as f32 / 255.0;
            }
        }
    }
}

/// The vertical filter of one output row, `(start, weights)`, over the bytes `columns` of
/// `rows` (rows of `row_len` bytes, the first of them input row `first_row`), into the same
/// places of `sums`, not yet shifted to bytes.
#[inline(always)]
fn vertical_sums(
    (start, weights): (usize, &[i32]),
    (rows, row_len, first_row): (&[u8], usize, usize),
    columns: std::ops::Range<usize>,
    sums: &mut [i32],
) {
    let sums = &mut sums[columns.clone()];
    sums.fill(HALF);
    // A zero weight is padding.
    for (k, &w) in weights.iter().enumerate().filter(|(_, w)| **w != 0) {
        let y = start + k - first_row;
        let src = &rows[y * row_len..(y + 1) * row_len][columns.clone()];
        for (d, &s) in sums.iter_mut().zip(src) {
            *d += w * s as i32;
        }
    }
}

/// Rows filtered at once by the horizontal pass, one per 32-bit lane.
const BLOCK: usize = 16;

/// One byte of each of the `BLOCK` rows of a block.
type Column = [u8; BLOCK];

/// The horizontal pass over `src` (rows of `stride` bytes, `channels` interleaved) into planar
/// rows of `dst` (`channels` planes of `side` bytes each), `BLOCK` rows at a time: the block is
/// turned so that each column of bytes is one vector, and each output is then a sum of whole
/// vectors. Filtering along a row instead needs a sum across the lanes of a vector per output,
/// which cost more than the products.
#[inline(always)]
fn horizontal_pass(taps: &Taps, (channels, stride): (usize, usize), src: &[u8], dst: &mut [u8]) {
    let side = taps.starts.len();
    let row_len = side * channels;
    let span = taps.span();
    let read = span.start * channels..span.end * channels;
    let mut columns = vec![[0u8; BLOCK]; read.len()];
    let mut outputs = vec![[0u8; BLOCK]; row_len];
    for (src, dst) in src
        .chunks(BLOCK * stride)
        .zip(dst.chunks_mut(BLOCK * row_len))
    {
        turn_rows(src, stride, read.clone(), &mut columns);
        for (c, plane) in outputs.chunks_exact_mut(side).enumerate() {
            for ((start, weights), out) in taps.windows().zip(plane.iter_mut()) {
                let mut sums = [HALF; BLOCK];
                for (k, &w) in weights.iter().enumerate() {
                    let column = &columns[(start + k) * channels + c - read.start];
                    for (sum, &p) in sums.iter_mut().zip(column) {
                        *sum += w * p as i32;
                    }
                }
                for (o, &sum) in out.iter_mut().zip(&sums) {
                    *o = clip8(sum) as u8;
                }
            }
        }
        turn_columns(&outputs, row_len, dst);
    }
}

/// The bytes `read` of each row of `src` (up to `BLOCK` rows of `stride` bytes) as columns: byte
/// `j` of row `r` is `columns[j - read.start][r]`; missing rows read as zeros.
#[inline(always)]
fn turn_rows(src: &[u8], stride: usize, read: std::ops::Range<usize>, columns: &mut [Column]) {
    for (at, columns) in read.clone().step_by(BLOCK).zip(columns.chunks_mut(BLOCK)) {
        let mut square = [[0u8; BLOCK]; BLOCK];
        for (row, line) in src.chunks_exact(stride).zip(&mut square) {
            // A whole line as one 16-byte move: a copy of any length is a call to `memcpy`.
            match row.get(at..at + BLOCK).filter(|_| at + BLOCK <= read.end) {
                Some(bytes) => *line = bytes.try_into().expect("16 bytes"),
                None => {
                    let bytes = &row[at..read.end];
                    line[..bytes.len()].copy_from_slice(bytes);
                }
            }
        }
        let turned = transpose(&square);
        columns.copy_from_slice(&turned[..columns.len()]);
    }
}

/// The columns `outputs` (one byte per row of the block) written as the rows of `dst` (up to
/// `BLOCK` rows of `row_len` bytes).
#[inline(always)]
fn turn_columns(outputs: &[Column], row_len: usize, dst: &mut [u8]) {
    for (at, columns) in (0..row_len).step_by(BLOCK).zip(outputs.chunks(BLOCK)) {
        let mut square = [[0u8; BLOCK]; BLOCK];
        square[..columns.len()].copy_from_slice(columns);
        let turned = transpose(&square);
        for (row, line) in dst.chunks_exact_mut(row_len).zip(&turned) {
            match row.get_mut(at..at + BLOCK) {
                Some(bytes) => *<&mut Column>::try_from(bytes).expect("16 bytes") = *line,
                None => row[at..].copy_from_slice(&line[..columns.len()]),
            }
        }
    }
}

/// A 16 x 16 square of bytes transposed: four rounds of interleaving rows `i` and `i + 8`
/// (bytes, then pairs, quads and eights of them), 64 instructions of SSE2, which every x86-64
/// CPU has; a compiler writes a transposing loop as 256 single-byte moves. Each round moves the
/// top bit of a byte's row number to the bottom of its place in the row, so the rows are taken
/// in bit-reversed order for the row numbers to end up in order.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn transpose(square: &[Column; BLOCK]) -> [Column; BLOCK] {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86-64; the loads and stores are unaligned ones of 16 bytes, from
    // and to arrays of 16 bytes.
    unsafe {
        let mut v: [__m128i; BLOCK] = std::array::from_fn(|i| {
            let row = (i as u8).reverse_bits() >> 4;
            _mm_loadu_si128(square[row as usize].as_ptr().cast())
        });
        for round in 0..4 {
            let half = BLOCK / 2;
            let w: [__m128i; BLOCK] = std::array::from_fn(|i| {
                let (a, b) = (v[i / 2], v[i / 2 + half]);
                match (round, i % 2) {
                    (0, 0) => _mm_unpacklo_epi8(a, b),
                    (0, _) => _mm_unpackhi_epi8(a, b),
                    (1, 0) => _mm_unpacklo_epi16(a, b),
                    (1, _) => _mm_unpackhi_epi16(a, b),
                    (2, 0) => _mm_unpacklo_epi32(a, b),
                    (2, _) => _mm_unpackhi_epi32(a, b),
                    (_, 0) => _mm_unpacklo_epi64(a, b),
                    (_, _) => _mm_unpackhi_epi64(a, b),
                }
            });
            v = w;
        }
        let mut out = [[0u8; BLOCK]; BLOCK];
        for (line, vector) in out.iter_mut().zip(&v) {
            _mm_storeu_si128(line.as_mut_ptr().cast(), *vector);
        }
        out
    }
}

/// A 16 x 16 square of bytes transposed.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn transpose(square: &[Column; BLOCK]) -> [Column; BLOCK] {
    std::array::from_fn(|j| std::array::from_fn(|r| square[r][j]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_turns_rows_into_columns() {
        let square: [Column; BLOCK] =
            std::array::from_fn(|r| std::array::from_fn(|j| (r * 16 + j) as u8));
        let turned = transpose(&square);
        for (j, column) in turned.iter().enumerate() {
            for (r, &byte) in column.iter().enumerate() {
                assert_eq!(byte, square[r][j], "row {r}, column {j}");
            }
        }
    }
}
