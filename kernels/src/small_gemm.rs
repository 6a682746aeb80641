//! Matrix products with few rows (a linear layer's batch of 8 to 64), on both cores; fewer
//! than 8 rows go to [`crate::stream_gemm`].
//!
//! Why not the `gemm` crate alone: its blocking is made for large products. At 32 rows and a
//! 4096x4096 weight it ran at 80 GFLOP/s on two cores of an Intel Xeon (AVX-512), about 60% of
//! PyTorch's, and at 11-24 GFLOP/s on two AMD EPYC Zen 1 cores (AVX2), PyTorch's at 18.
//! Here each thread takes whole column blocks of the right-hand side, packs them (reading long
//! contiguous row segments, which the hardware prefetcher follows) and runs a register tile
//! over every row: 8x48 with AVX-512, 4x24 with AVX2; a right-hand side given transposed (the
//! input gradient `dY · Wᵀ`) goes to [`crate::broadcast_gemm`] with AVX-512, and is read as
//! rows of dot products with AVX2 and below 8 rows. 32x4096x4096 took 8.6 ms
//! against the `gemm` crate's 13.3 on the Xeon (PyTorch 8.4), 38-42 ms against 56-75 on Zen 1.
//! Anything else (CPUs without AVX2 and FMA, more or fewer rows, narrow products) goes to the
//! `gemm` crate.

#[cfg(target_arch = "x86_64")]
use std::ops::Range;

use gemm::Parallelism;
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::cpu::Isa;
use crate::im2col;
#[cfg(target_arch = "x86_64")]
use crate::scratch::Scratch;
use crate::shared_output::Output;

/// A row-major matrix view: element `(i, j)` is `values[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    pub values: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Operand<'a> {
    /// A matrix stored row after row, `cols` values each.
    pub fn rows(values: &'a [f32], cols: usize) -> Self {
        Self {
            values,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a matrix stored row after row with `cols` values each.
    pub fn transposed(values: &'a [f32], cols: usize) -> Self {
        Self {
            values,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// Whether every element of a `rows x cols` matrix lies inside `values`.
    fn covers(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.values.len()
    }
}

/// Rows the register tile covers; also the fewest rows this module takes.
const TILE_ROWS: usize = 8;
/// Columns of a packed panel: one AVX-512 tile (three vectors) or two AVX2 tiles.
const TILE_COLS: usize = 48;
/// The most rows this module takes: beyond, the `gemm` crate's blocking wins.
const MAX_ROWS: usize = 64;
/// The shortest depth the dot-product path takes.
const MIN_DOT_DEPTH: usize = 64;

/// `c[m, n] (+)= a[m, k] · b[k, n]`, `c` stored row after row.
///
/// # Panics
/// If an operand is too short for the sizes.
pub fn matmul([m, k, n]: [usize; 3], a: Operand, b: Operand, c: &mut [f32], accumulate: bool) {
    assert!(a.covers(m, k) && b.covers(k, n) && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    Path::choose([m, k, n], &a, &b).run([m, k, n], a, b, c, accumulate);
}

/// `a[m, k] · b[k, n]` as a new buffer, `m x n` row after row. Where the product is written
/// whole without being read (a weight gradient: [`crate::shallow_gemm`] with AVX-512, else the
/// `gemm` crate), the buffer is not zeroed first: zeroing torchvision's fc1 weight gradient
/// (151 MB) took longer than computing it.
///
/// # Panics
/// If an operand is too short for the sizes.
pub fn product(dims: [usize; 3], a: Operand, b: Operand) -> Vec<f32> {
    let [m, k, n] = dims;
    assert!(a.covers(m, k) && b.covers(k, n));
    let mut c = Vec::with_capacity(m * n);
    match Path::choose(dims, &a, &b) {
        #[cfg(target_arch = "x86_64")]
        Path::Shallow => {
            crate::shallow_gemm::product(dims, a, b, &mut c.spare_capacity_mut()[..m * n]);
        }
        Path::Gemm if m * n * k > 0 => {
            // SAFETY: the operands cover their extents (checked above); `c` has room for the
            // m x n product, which the `gemm` crate writes without reading.
            unsafe {
                im2col::matmul_to(
                    [m, n, k],
                    (c.as_mut_ptr(), n),
                    false,
                    (a.values, a.col_stride, a.row_stride),
                    (b.values, b.col_stride, b.row_stride),
                    Parallelism::Rayon(0),
                )
            }
        }
        _ => {
            c.resize(m * n, 0.0);
            matmul(dims, a, b, &mut c, false);
        }
    }
    // SAFETY: every path above wrote all m x n values.
    unsafe { c.set_len(m * n) };
    c
}

/// Which implementation computes a product.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    /// Packed column blocks of `b` under the register tile.
    #[cfg(target_arch = "x86_64")]
    Panels(Isa),
    /// Dot products of `a`'s rows with `b`'s columns, both contiguous.
    #[cfg(target_arch = "x86_64")]
    Dots(Isa),
    /// `b` given transposed at 8 to 64 rows, with AVX-512: its values broadcast against
    /// vectors of `a`'s columns ([`crate::broadcast_gemm`]).
    #[cfg(target_arch = "x86_64")]
    Broadcast,
    /// As deep as a batch, with more rows than a tile takes (a weight gradient), with
    /// AVX-512: each output summed whole in registers ([`crate::shallow_gemm`]).
    #[cfg(target_arch = "x86_64")]
    Shallow,
    /// Fewer rows than a tile: each thread streams a range of `b`'s rows.
    #[cfg(target_arch = "x86_64")]
    Stream(Isa),
    /// The `gemm` crate.
    Gemm,
}

impl Path {
    fn choose(dims: [usize; 3], a: &Operand, b: &Operand) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = Isa::best() {
            return Self::for_isa(isa, dims, a, b);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (dims, a, b);
        Self::Gemm
    }

    /// The path on a CPU whose best register tiles are `isa`'s.
    #[cfg(target_arch = "x86_64")]
    fn for_isa(isa: Isa, [m, k, n]: [usize; 3], a: &Operand, b: &Operand) -> Self {
        if m < TILE_ROWS && n >= TILE_COLS && k >= MIN_DOT_DEPTH && b.col_stride == 1 {
            return Self::Stream(isa);
        }
        let shallow = (1..=crate::shallow_gemm::MAX_DEPTH).contains(&k) && m > MAX_ROWS;
        if shallow && isa == Isa::Avx512 && n >= TILE_COLS && a.row_stride == 1 && b.col_stride == 1
        {
            return Self::Shallow;
        }
        let sized = (TILE_ROWS..=MAX_ROWS).contains(&m) && n >= TILE_COLS;
        if sized && b.col_stride == 1 {
            return Self::Panels(isa);
        }
        // Short dot products (a classifier's few outputs) spend more on their final horizontal
        // sums than on the products. Fewer rows than a tile take them too: each task reads a
        // few whole rows of `b` (an input gradient at batch 1, as Grad-CAM takes it).
        let rows = (1..=MAX_ROWS).contains(&m) && n >= TILE_COLS;
        if rows && b.row_stride == 1 && a.col_stride == 1 && k >= MIN_DOT_DEPTH {
            return match isa == Isa::Avx512 && m >= TILE_ROWS {
                true => Self::Broadcast,
                false => Self::Dots(isa),
            };
        }
        Self::Gemm
    }

    fn run(self, dims: [usize; 3], a: Operand, b: Operand, c: &mut [f32], accumulate: bool) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Panels(Isa::Avx512) => panels::<avx512::Avx512>(dims, a, b, c, accumulate),
            #[cfg(target_arch = "x86_64")]
            Self::Panels(Isa::Avx2) => panels::<avx2::Avx2>(dims, a, b, c, accumulate),
            #[cfg(target_arch = "x86_64")]
            Self::Dots(Isa::Avx512) => dots::<avx512::Avx512>(dims, a, b, c, accumulate),
            #[cfg(target_arch = "x86_64")]
            Self::Dots(Isa::Avx2) => dots::<avx2::Avx2>(dims, a, b, c, accumulate),
            #[cfg(target_arch = "x86_64")]
            Self::Shallow => crate::shallow_gemm::matmul(dims, a, b, c, accumulate),
            #[cfg(target_arch = "x86_64")]
            Self::Broadcast => crate::broadcast_gemm::matmul(dims, a, b, c, accumulate),
            #[cfg(target_arch = "x86_64")]
            Self::Stream(isa) => crate::stream_gemm::matmul(isa, dims, a, b, c, accumulate),
            Self::Gemm => {
                let [m, k, n] = dims;
                // SAFETY: `matmul` checked every operand's extent; `c` is exclusively borrowed.
                unsafe {
                    im2col::matmul(
                        [m, n, k],
                        c,
                        accumulate,
                        (a.values, a.col_stride, a.row_stride),
                        (b.values, b.col_stride, b.row_stride),
                        Parallelism::Rayon(0),
                    )
                }
            }
        }
    }
}

/// The part of the product one register tile computes.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Block {
    rows: usize,
    depth: usize,
    /// Columns of `c` written; the rest of the tile is padding.
    width: usize,
    /// Whether to add to `c` rather than overwrite it.
    accumulate: bool,
}

/// One instruction set's register tiles.
#[cfg(target_arch = "x86_64")]
trait Tiles {
    /// Rows of `a` per dot-product tile.
    const DOT_ROWS: usize;
    /// Columns of `c` (rows of the transposed `b`) per dot-product tile.
    const DOT_COLS: usize;

    /// `c[rows, width] (+)= a[rows, depth] · panel[depth, TILE_COLS]`, for up to `TILE_ROWS`
    /// rows and `TILE_COLS` columns.
    ///
    /// # Safety
    /// The CPU has the instruction set; `a` (with its row and column strides) covers
    /// `rows x depth`, the packed panel `depth x TILE_COLS`, and `c` (with its row stride)
    /// `rows x width`.
    unsafe fn tile(
        block: &Block,
        a: (*const f32, [usize; 2]),
        panel: *const f32,
        c: (*mut f32, usize),
    );

    /// `c[rows, width] (+)= a[rows, depth] · bᵀ` where `b` holds `width` rows of `depth`
    /// values, for up to `DOT_ROWS` rows and `DOT_COLS` columns.
    ///
    /// # Safety
    /// The CPU has the instruction set; `a` covers `rows` rows of `depth` contiguous values (at
    /// its row stride), `b` `width` such rows, and `c` (with its row stride) `rows x width`.
    unsafe fn dot_tile(
        block: &Block,
        a: (*const f32, usize),
        b: (*const f32, usize),
        c: (*mut f32, usize),
    );
}

/// Depth of a packed block: 256 rows of 48 columns (48 KiB) stay in the L2 cache while the
/// tile runs over every row of `a`.
#[cfg(target_arch = "x86_64")]
const DEPTH_BLOCK: usize = 256;
/// Tiles per column block a task packs: 8 x 48 columns, so that each row of `b` is read as
/// 1.5 KiB at a time.
#[cfg(target_arch = "x86_64")]
const BLOCK_TILES: usize = 8;

/// The product under `T`'s panel tile (`Path` picks `T` only on a CPU that has its
/// instructions).
#[cfg(target_arch = "x86_64")]
fn panels<T: Tiles>(
    [m, k, n]: [usize; 3],
    a: Operand,
    b: Operand,
    c: &mut [f32],
    accumulate: bool,
) {
    const BLOCK_COLS: usize = BLOCK_TILES * TILE_COLS;
    let out = Output(c.as_mut_ptr());
    (0..n.div_ceil(BLOCK_COLS)).into_par_iter().for_each_init(
        || Scratch::new(DEPTH_BLOCK * BLOCK_COLS),
        |packed, block| {
            let columns = block * BLOCK_COLS..n.min((block + 1) * BLOCK_COLS);
            for p0 in (0..k).step_by(DEPTH_BLOCK) {
                let depth = DEPTH_BLOCK.min(k - p0);
                pack(&b, p0..p0 + depth, columns.clone(), packed);
                for (tile, panel) in packed.chunks(DEPTH_BLOCK * TILE_COLS).enumerate() {
                    let j0 = columns.start + tile * TILE_COLS;
                    if j0 >= columns.end {
                        break;
                    }
                    for i0 in (0..m).step_by(TILE_ROWS) {
                        let block = Block {
                            rows: TILE_ROWS.min(m - i0),
                            depth,
                            width: TILE_COLS.min(n - j0),
                            accumulate: accumulate || p0 > 0,
                        };
                        // SAFETY: `matmul` checked the extents of `a` and `c`; the tile reads
                        // rows i0.. and depth p0.. of `a` and writes rows i0.. of this task's
                        // own columns j0.. of `c`; the CPU has T's instructions (`Path`).
                        unsafe {
                            let a_start =
                                a.values.as_ptr().add(i0 * a.row_stride + p0 * a.col_stride);
                            let strides = [a.row_stride, a.col_stride];
                            let c = out.at(i0 * n + j0);
                            T::tile(&block, (a_start, strides), panel.as_ptr(), (c, n));
                        }
                    }
                }
            }
        },
    );
}

/// Copies `b[rows, columns]` (contiguous along its rows) into `packed` as tiles of
/// `TILE_COLS` columns, each `DEPTH_BLOCK` rows deep and zero-padded on the right, reading `b`
/// a whole row segment at a time.
#[cfg(target_arch = "x86_64")]
fn pack(b: &Operand, rows: Range<usize>, columns: Range<usize>, packed: &mut [f32]) {
    debug_assert_eq!(b.col_stride, 1);
    for (depth, p) in rows.enumerate() {
        let row = &b.values[p * b.row_stride..][columns.clone()];
        for (tile, values) in row.chunks(TILE_COLS).enumerate() {
            let dst = &mut packed[(tile * DEPTH_BLOCK + depth) * TILE_COLS..][..TILE_COLS];
            dst[..values.len()].copy_from_slice(values);
            dst[values.len()..].fill(0.0);
        }
    }
}

/// Dot products along the depth, for a `b` given transposed (`dY · Wᵀ`, both contiguous along
/// the depth): each task takes `T::DOT_COLS` columns of `c` (as many rows of `W`, kept in the
/// cache while every row of `a` passes), in depth blocks that keep those rows in the L1 cache.
#[cfg(target_arch = "x86_64")]
fn dots<T: Tiles>([m, k, n]: [usize; 3], a: Operand, b: Operand, c: &mut [f32], accumulate: bool) {
    const DEPTH: usize = 1024;
    let out = Output(c.as_mut_ptr());
    (0..n.div_ceil(T::DOT_COLS))
        .into_par_iter()
        .for_each(|block| {
            let j0 = block * T::DOT_COLS;
            for p0 in (0..k).step_by(DEPTH) {
                for i0 in (0..m).step_by(T::DOT_ROWS) {
                    let block = Block {
                        rows: T::DOT_ROWS.min(m - i0),
                        depth: DEPTH.min(k - p0),
                        width: T::DOT_COLS.min(n - j0),
                        accumulate: accumulate || p0 > 0,
                    };
                    // SAFETY: `matmul` checked the extents; `a` and `b` are contiguous along the
                    // depth (`Path::for_isa`); the task writes its own columns j0.. of `c`; the CPU
                    // has T's instructions.
                    unsafe {
                        let a_rows = (a.values.as_ptr().add(i0 * a.row_stride + p0), a.row_stride);
                        let b_rows = (b.values.as_ptr().add(j0 * b.col_stride + p0), b.col_stride);
                        T::dot_tile(&block, a_rows, b_rows, (out.at(i0 * n + j0), n));
                    }
                }
            }
        });
}

/// Dispatches a row count to the tile compiled for it, so that the accumulators of every size
/// stay in registers.
#[cfg(target_arch = "x86_64")]
macro_rules! by_rows {
    ($rows:expr, [$($r:literal),*], $tile:ident $args:tt) => {
        match $rows {
            $($r => $tile::<$r> $args,)*
            rows => unreachable!("no tile for {rows} rows"),
        }
    };
}

/// The AVX-512 register tiles: 8x48 (three vectors) and 4x6 dot products.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Block, TILE_COLS, TILE_ROWS, Tiles};

    pub(super) struct Avx512;

    impl Tiles for Avx512 {
        const DOT_ROWS: usize = 4;
        const DOT_COLS: usize = 6;

        unsafe fn tile(
            block: &Block,
            a: (*const f32, [usize; 2]),
            panel: *const f32,
            c: (*mut f32, usize),
        ) {
            debug_assert!(block.rows <= TILE_ROWS && block.width <= TILE_COLS);
            // SAFETY: forwarded from the caller.
            unsafe {
                by_rows!(
                    block.rows,
                    [8, 7, 6, 5, 4, 3, 2, 1],
                    tile_of(block, a, panel, c)
                )
            }
        }

        unsafe fn dot_tile(
            block: &Block,
            a: (*const f32, usize),
            b: (*const f32, usize),
            c: (*mut f32, usize),
        ) {
            debug_assert!(block.rows <= Self::DOT_ROWS);
            debug_assert!((1..=Self::DOT_COLS).contains(&block.width));
            // SAFETY: forwarded from the caller.
            unsafe { by_rows!(block.rows, [4, 3, 2, 1], dot_tile_of(block, a, b, c)) }
        }
    }

    /// Lane masks of the tile's three vectors for a `width` of live columns.
    fn masks(width: usize) -> [__mmask16; 3] {
        std::array::from_fn(|v| {
            let live = width.saturating_sub(v * 16).min(16);
            ((1u32 << live) - 1) as __mmask16
        })
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn tile_of<const R: usize>(
        block: &Block,
        (a, [row_stride, col_stride]): (*const f32, [usize; 2]),
        panel: *const f32,
        (c, ldc): (*mut f32, usize),
    ) {
        let mut sums = [[_mm512_setzero_ps(); 3]; R];
        for p in 0..block.depth {
            // SAFETY: the panel holds `depth` rows of TILE_COLS; `a` covers R x depth.
            unsafe {
                let row = panel.add(p * TILE_COLS);
                let b = [
                    _mm512_loadu_ps(row),
                    _mm512_loadu_ps(row.add(16)),
                    _mm512_loadu_ps(row.add(32)),
                ];
                for (i, sums) in sums.iter_mut().enumerate() {
                    let a = _mm512_set1_ps(*a.add(i * row_stride + p * col_stride));
                    for (sum, b) in sums.iter_mut().zip(b) {
                        *sum = _mm512_fmadd_ps(a, b, *sum);
                    }
                }
            }
        }
        let masks = masks(block.width);
        for (i, sums) in sums.iter().enumerate() {
            for (v, (sum, mask)) in sums.iter().zip(masks).enumerate() {
                // SAFETY: `c` covers R rows of `width` columns; the mask keeps to them.
                unsafe {
                    let dst = c.add(i * ldc + v * 16);
                    let value = match block.accumulate {
                        true => _mm512_add_ps(*sum, _mm512_maskz_loadu_ps(mask, dst)),
                        false => *sum,
                    };
                    _mm512_mask_storeu_ps(dst, mask, value);
                }
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dot_tile_of<const R: usize>(
        block: &Block,
        (a, a_stride): (*const f32, usize),
        (b, b_stride): (*const f32, usize),
        (c, ldc): (*mut f32, usize),
    ) {
        const COLS: usize = Avx512::DOT_COLS;
        let mut sums = [[_mm512_setzero_ps(); COLS]; R];
        // Rows of `b` past `width` repeat its last one; their sums are never stored.
        let b_rows: [*const f32; COLS] =
            std::array::from_fn(|j| b.wrapping_add(j.min(block.width - 1) * b_stride));
        for p in (0..block.depth).step_by(16) {
            let live = (block.depth - p).min(16);
            let mask = ((1u32 << live) - 1) as __mmask16;
            // SAFETY: the mask keeps the loads inside the `depth` values of each row.
            unsafe {
                let b: [__m512; COLS] =
                    std::array::from_fn(|j| _mm512_maskz_loadu_ps(mask, b_rows[j].add(p)));
                for (i, sums) in sums.iter_mut().enumerate() {
                    let a = _mm512_maskz_loadu_ps(mask, a.add(i * a_stride + p));
                    for (sum, b) in sums.iter_mut().zip(b) {
                        *sum = _mm512_fmadd_ps(a, b, *sum);
                    }
                }
            }
        }
        for (i, sums) in sums.iter().enumerate() {
            for (j, sum) in sums.iter().enumerate().take(block.width) {
                // SAFETY: `c` covers `rows x width`.
                unsafe { super::store(c.add(i * ldc + j), _mm512_reduce_add_ps(*sum), block) };
            }
        }
    }
}

/// The AVX2 register tiles: 4x24 (three 8-lane vectors, 12 accumulators of the 16 registers),
/// run over the 8x48 blocks the AVX-512 tile takes, and 4x3 dot products.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Block, TILE_COLS, TILE_ROWS, Tiles};

    pub(super) struct Avx2;

    /// Rows of the register tile.
    const ROWS: usize = 4;
    /// Columns of the register tile: three 8-lane vectors, half a packed panel.
    const COLS: usize = 24;

    impl Tiles for Avx2 {
        const DOT_ROWS: usize = 4;
        const DOT_COLS: usize = 3;

        unsafe fn tile(
            block: &Block,
            (a, [row_stride, col_stride]): (*const f32, [usize; 2]),
            panel: *const f32,
            (c, ldc): (*mut f32, usize),
        ) {
            debug_assert!(block.rows <= TILE_ROWS && block.width <= TILE_COLS);
            for j0 in (0..block.width).step_by(COLS) {
                for i0 in (0..block.rows).step_by(ROWS) {
                    let part = Block {
                        rows: ROWS.min(block.rows - i0),
                        width: COLS.min(block.width - j0),
                        ..*block
                    };
                    // SAFETY: the part lies inside the block the caller vouched for; the
                    // panel is padded to TILE_COLS columns.
                    unsafe {
                        let a = (a.add(i0 * row_stride), [row_stride, col_stride]);
                        let (panel, c) = (panel.add(j0), (c.add(i0 * ldc + j0), ldc));
                        by_rows!(part.rows, [4, 3, 2, 1], tile_of(&part, a, panel, c))
                    }
                }
            }
        }

        unsafe fn dot_tile(
            block: &Block,
            a: (*const f32, usize),
            b: (*const f32, usize),
            c: (*mut f32, usize),
        ) {
            debug_assert!(block.rows <= Self::DOT_ROWS);
            debug_assert!((1..=Self::DOT_COLS).contains(&block.width));
            // SAFETY: forwarded from the caller.
            unsafe { by_rows!(block.rows, [4, 3, 2, 1], dot_tile_of(block, a, b, c)) }
        }
    }

    /// A lane mask for `maskload`/`maskstore` with the first `live` of 8 lanes on.
    #[target_feature(enable = "avx2")]
    fn mask(live: usize) -> __m256i {
        const LANES: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        // SAFETY: `8 - live` is 0..=8, so the eight lanes read lie inside LANES.
        unsafe { _mm256_loadu_si256(LANES.as_ptr().add(8 - live.min(8)).cast()) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_of<const R: usize>(
        block: &Block,
        (a, [row_stride, col_stride]): (*const f32, [usize; 2]),
        panel: *const f32,
        (c, ldc): (*mut f32, usize),
    ) {
        let mut sums = [[_mm256_setzero_ps(); 3]; R];
        for p in 0..block.depth {
            // SAFETY: the panel holds `depth` rows of TILE_COLS (the tile's 24 columns inside
            // them); `a` covers R x depth.
            unsafe {
                let row = panel.add(p * TILE_COLS);
                let b = [
                    _mm256_loadu_ps(row),
                    _mm256_loadu_ps(row.add(8)),
                    _mm256_loadu_ps(row.add(16)),
                ];
                for (i, sums) in sums.iter_mut().enumerate() {
                    let a = _mm256_broadcast_ss(&*a.add(i * row_stride + p * col_stride));
                    for (sum, b) in sums.iter_mut().zip(b) {
                        *sum = _mm256_fmadd_ps(a, b, *sum);
                    }
                }
            }
        }
        for (i, sums) in sums.iter().enumerate() {
            for (v, sum) in sums.iter().enumerate() {
                let live = block.width.saturating_sub(v * 8).min(8);
                if live == 0 {
                    break;
                }
                let mask = mask(live);
                // SAFETY: `c` covers R rows of `width` columns; the mask keeps to them.
                unsafe {
                    let dst = c.add(i * ldc + v * 8);
                    let value = match block.accumulate {
                        true => _mm256_add_ps(*sum, _mm256_maskload_ps(dst, mask)),
                        false => *sum,
                    };
                    _mm256_maskstore_ps(dst, mask, value);
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_tile_of<const R: usize>(
        block: &Block,
        (a, a_stride): (*const f32, usize),
        (b, b_stride): (*const f32, usize),
        (c, ldc): (*mut f32, usize),
    ) {
        const COLS: usize = Avx2::DOT_COLS;
        let mut sums = [[_mm256_setzero_ps(); COLS]; R];
        // Rows of `b` past `width` repeat its last one; their sums are never stored.
        let b_rows: [*const f32; COLS] =
            std::array::from_fn(|j| b.wrapping_add(j.min(block.width - 1) * b_stride));
        let full = block.depth / 8 * 8;
        // SAFETY (both loops): the loads stay inside the `depth` values of each row, the last
        // partial vector under a mask.
        for p in (0..full).step_by(8) {
            unsafe {
                let b: [__m256; COLS] = std::array::from_fn(|j| _mm256_loadu_ps(b_rows[j].add(p)));
                for (i, sums) in sums.iter_mut().enumerate() {
                    let a = _mm256_loadu_ps(a.add(i * a_stride + p));
                    for (sum, b) in sums.iter_mut().zip(b) {
                        *sum = _mm256_fmadd_ps(a, b, *sum);
                    }
                }
            }
        }
        if full < block.depth {
            let mask = mask(block.depth - full);
            unsafe {
                let b: [__m256; COLS] =
                    std::array::from_fn(|j| _mm256_maskload_ps(b_rows[j].add(full), mask));
                for (i, sums) in sums.iter_mut().enumerate() {
                    let a = _mm256_maskload_ps(a.add(i * a_stride + full), mask);
                    for (sum, b) in sums.iter_mut().zip(b) {
                        *sum = _mm256_fmadd_ps(a, b, *sum);
                    }
                }
            }
        }
        for (i, sums) in sums.iter().enumerate() {
            for (j, sum) in sums.iter().enumerate().take(block.width) {
                // SAFETY: `c` covers `rows x width`.
                unsafe { super::store(c.add(i * ldc + j), horizontal_sum(*sum), block) };
            }
        }
    }

    /// The sum of a vector's eight lanes.
    #[target_feature(enable = "avx2")]
    fn horizontal_sum(v: __m256) -> f32 {
        let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
        _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
    }
}

/// Writes (or, for an accumulating block, adds) one dot product into `c`.
///
/// # Safety
/// `dst` points into the output.
#[cfg(target_arch = "x86_64")]
unsafe fn store(dst: *mut f32, value: f32, block: &Block) {
    // SAFETY: forwarded from the caller.
    unsafe {
        *dst = if block.accumulate {
            *dst + value
        } else {
            value
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise;

    /// The product in f64, element by element.
    fn reference([m, k, n]: [usize; 3], a: &Operand, b: &Operand, c: &[f32]) -> Vec<f64> {
        let at = |o: &Operand, i: usize, j: usize| o.values[i * o.row_stride + j * o.col_stride];
        (0..m * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                let dot: f64 = (0..k)
                    .map(|p| at(a, i, p) as f64 * at(b, p, j) as f64)
                    .sum();
                c[ij] as f64 + dot
            })
            .collect()
    }

    /// Every layout of the linear layer's three products, against the f64 reference, written
    /// over and added to a non-zero output.
    fn check(dims: [usize; 3]) {
        let [m, k, n] = dims;
        let (a_values, b_values) = (noise(m * k, 1), noise(k * n, 2));
        let layouts = [
            (Operand::rows(&a_values, k), Operand::rows(&b_values, n)),
            (
                Operand::rows(&a_values, k),
                Operand::transposed(&b_values, k),
            ),
            (
                Operand::transposed(&a_values, m),
                Operand::rows(&b_values, n),
            ),
        ];
        for (a, b) in layouts {
            for path in paths(dims, &a, &b) {
                for accumulate in [false, true] {
                    let start = noise(m * n, 3);
                    let mut c = start.clone();
                    path.run(dims, a, b, &mut c, accumulate);
                    let zeros = vec![0.0; m * n];
                    let want = reference(dims, &a, &b, if accumulate { &start } else { &zeros });
                    for (got, want) in c.iter().zip(want) {
                        let tolerance = 1e-5 * (k as f64).sqrt().max(1.0);
                        assert!(
                            (*got as f64 - want).abs() <= tolerance,
                            "{dims:?}, {path:?}, strides {:?} {:?}, accumulate {accumulate}: \
                             {got} against {want}",
                            (a.row_stride, a.col_stride),
                            (b.row_stride, b.col_stride),
                        );
                    }
                }
            }
        }
        // The entry point takes the best of them, and checks the operands.
        let mut c = vec![0.0; m * n];
        matmul(dims, layouts[0].0, layouts[0].1, &mut c, false);
        let want = reference(dims, &layouts[0].0, &layouts[0].1, &vec![0.0; m * n]);
        assert!(
            c.iter()
                .zip(want)
                .all(|(got, want)| (*got as f64 - want).abs() < 1e-3)
        );
    }

    /// The paths a product can take on this CPU: the register tiles of every instruction set
    /// it has (when the product suits them), and the `gemm` crate.
    fn paths(dims: [usize; 3], a: &Operand, b: &Operand) -> Vec<Path> {
        let mut paths = Vec::new();
        #[cfg(target_arch = "x86_64")]
        paths.extend(
            Isa::ALL
                .into_iter()
                .filter(|isa| isa.detected())
                .map(|isa| Path::for_isa(isa, dims, a, b)),
        );
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (dims, a, b);
        paths.dedup();
        if !paths.contains(&Path::Gemm) {
            paths.push(Path::Gemm);
        }
        paths
    }

    #[test]
    fn linear_layer_products_match_a_reference() {
        // Batch 32 through fc2-like and fc1-like layers, narrower for the test's time.
        check([32, 600, 520]);
        check([32, 256, 400]);
        // Partial tiles on every side: odd rows, depth past a block, columns past a tile.
        check([33, 300, 101]);
        check([9, 1030, 50]);
        check([64, 17, 48]);
        // Four vectors of lanes (64 rows), a last tile of one column.
        check([64, 70, 49]);
        // Weight gradients: more rows than a tile block takes, as deep as a batch; a last
        // block of rows and of columns cut short.
        check([203, 32, 100]);
        check([70, 1, 48]);
    }

    /// A new product buffer holds the whole product, on the paths that skip zeroing it (a
    /// weight gradient's shape: the shallow tile with AVX-512, the `gemm` crate when deeper)
    /// and on the others.
    #[test]
    fn new_products_are_written_whole() {
        let shapes = [
            [203, 32, 100],
            [70, 1, 48],
            [70, 100, 50],
            [9, 1030, 50],
            [3, 0, 5],
        ];
        for [m, k, n] in shapes {
            let (a_values, b_values) = (noise(m * k, 4), noise(k * n, 5));
            let (a, b) = (
                Operand::transposed(&a_values, m),
                Operand::rows(&b_values, n),
            );
            // Stale values where the product will go, should the allocator hand them back.
            drop(vec![f32::NAN; m * n]);
            let c = product([m, k, n], a, b);
            let want = reference([m, k, n], &a, &b, &vec![0.0; m * n]);
            assert_eq!(c.len(), m * n);
            for (got, want) in c.iter().zip(want) {
                assert!((*got as f64 - want).abs() < 1e-4, "{:?}", [m, k, n]);
            }
        }
    }

    #[test]
    fn other_sizes_take_the_gemm_crate_and_match() {
        check([1, 40, 200]);
        check([65, 40, 100]);
        check([32, 100, 10]);
    }

    #[test]
    fn batches_of_1_to_7_stream_the_weight_and_match() {
        // Depth not a multiple of the four rows taken at once nor of the threads; columns
        // past a chunk; a transposed `a` (strided reads of the input).
        check([1, 100, 200]);
        check([1, 1031, 600]);
        check([7, 64, 300]);
        check([3, 257, 48]);
    }

    #[test]
    fn the_register_tiles_take_batches_of_8_to_64_and_fewer_rows_stream() {
        let (a, b) = (vec![0.0; 32 * 64], vec![0.0; 64 * 96]);
        let path = |m: usize, b: Operand| Path::choose([m, 64, 96], &Operand::rows(&a, 64), &b);
        let tiles = tiles_available();
        assert_eq!(path(32, Operand::rows(&b, 96)) == Path::Gemm, !tiles);
        assert_eq!(path(32, Operand::transposed(&b, 64)) == Path::Gemm, !tiles);
        let streamed = path(2, Operand::rows(&b, 96));
        assert_eq!(matches!(streamed, Path::Stream(_)), tiles, "{streamed:?}");
        let dots = path(2, Operand::transposed(&b, 64));
        assert_eq!(matches!(dots, Path::Dots(_)), tiles, "{dots:?}");
        #[cfg(target_arch = "x86_64")]
        if Isa::best() == Some(Isa::Avx512) {
            assert_eq!(path(8, Operand::transposed(&b, 64)), Path::Broadcast);
            assert_eq!(path(64, Operand::transposed(&b, 64)), Path::Broadcast);
            let (x, dy) = (vec![0.0; 32 * 100], vec![0.0; 32 * 96]);
            let weight_grad = [100, 32, 96];
            let (x_t, dy) = (Operand::transposed(&x, 100), Operand::rows(&dy, 96));
            assert_eq!(Path::choose(weight_grad, &x_t, &dy), Path::Shallow);
        }
        let shallow = Path::choose(
            [32, 10, 96],
            &Operand::rows(&a, 10),
            &Operand::transposed(&b, 10),
        );
        assert_eq!(shallow, Path::Gemm);
    }

    /// Whether this CPU has AVX-512 or AVX2 with FMA (asked of the CPU, not of `Isa`).
    fn tiles_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("avx512f")
            || (std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"));
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    #[test]
    fn empty_products_leave_or_clear_the_output() {
        let mut c = vec![1.0; 6];
        matmul(
            [2, 0, 3],
            Operand::rows(&[], 0),
            Operand::rows(&[], 3),
            &mut c,
            true,
        );
        assert_eq!(c, vec![1.0; 6]);
        matmul(
            [2, 0, 3],
            Operand::rows(&[], 0),
            Operand::rows(&[], 3),
            &mut c,
            false,
        );
        assert_eq!(c, vec![0.0; 6]);
    }

    #[test]
    #[should_panic]
    fn a_short_operand_is_refused() {
        let mut c = vec![0.0; 32 * 48];
        matmul(
            [32, 10, 48],
            Operand::rows(&[0.0; 319], 10),
            Operand::rows(&[0.0; 480], 48),
            &mut c,
            false,
        );
    }
}
