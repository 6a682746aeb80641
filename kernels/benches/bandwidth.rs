//! How fast this machine's cores read memory: the floor under a batch-1 forward pass, whose
//! linear layers read every weight once for two FLOPs each. A STREAM-like pass on all of
//! rayon's threads (each a contiguous part, as `stream_gemm` reads the weights), over a buffer
//! the size of each network's linear weights (which a large L3 cache may partly hold between
//! passes) and over 1.5 GB (beyond any cache: main memory). `cargo bench -p alexnet-kernels
//! --bench bandwidth`; `scripts/membw.sh` prints the floors.

use std::time::Instant;

use rayon::prelude::*;

/// The linear weights of each network, in bytes: (6400·4096 + 4096·4096 + 4096·10)·4 for d2l's
/// at 224 px, (9216·4096 + 4096·4096 + 4096·1000)·4 for torchvision's.
const WEIGHTS: [(&str, usize); 2] = [
    ("d2l", (6400 * 4096 + 4096 * 4096 + 4096 * 10) * 4),
    ("imagenet", (9216 * 4096 + 4096 * 4096 + 4096 * 1000) * 4),
];
const MAIN_MEMORY: usize = 1536 << 20;

/// Median seconds of 9 passes of `f`, after two untimed ones.
fn median_s(mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[4]
}

/// Reads every value once (a sum into 64 lanes, so that no chain of additions binds it), a
/// contiguous part per thread, with AVX-512 where the CPU has it (as the kernels use it).
fn read(values: &[f32]) -> f32 {
    let part = values.len().div_ceil(rayon::current_num_threads());
    values.par_chunks(part).map(sum).sum()
}

fn sum(values: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512.
        return unsafe { sum_avx512(values) };
    }
    sum_lanes(values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sum_avx512(values: &[f32]) -> f32 {
    sum_lanes(values)
}

#[inline(always)]
fn sum_lanes(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 64];
    for block in values.chunks_exact(64) {
        for (lane, v) in lanes.iter_mut().zip(block) {
            *lane += v;
        }
    }
    lanes.iter().sum()
}

/// Copies `from` into `to`, a contiguous part per thread.
fn copy(from: &[f32], to: &mut [f32]) {
    let part = from.len().div_ceil(rayon::current_num_threads());
    to.par_chunks_mut(part)
        .zip(from.par_chunks(part))
        .for_each(|(to, from)| to.copy_from_slice(from));
}

fn main() {
    println!("{} threads", rayon::current_num_threads());
    let sizes = WEIGHTS
        .iter()
        .map(|&(name, bytes)| (format!("{name} linear weights"), bytes))
        .chain([("main memory".to_string(), MAIN_MEMORY)]);
    for (name, bytes) in sizes {
        let values: Vec<f32> = (0..bytes / 4).map(|i| (i % 7) as f32).collect();
        let mut target = vec![0.0f32; values.len()];
        let read_s = median_s(|| {
            std::hint::black_box(read(std::hint::black_box(&values)));
        });
        let copy_s = median_s(|| copy(&values, &mut target));
        let gb = bytes as f64 / 1e9;
        println!(
            "{name:24} {:7.1} MB  read {:6.1} GB/s ({:6.2} ms)  copy {:6.1} GB/s read+written",
            bytes as f64 / 1e6,
            gb / read_s,
            read_s * 1e3,
            2.0 * gb / copy_s,
        );
    }
}
