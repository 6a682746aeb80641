//! Each kernel alone at AlexNet's shapes (224 px, batch 32 unless `ALEXNET_BENCH_BATCH` says
//! otherwise): median milliseconds of a few runs. `cargo bench -p alexnet-kernels`;
//! `ALEXNET_BENCH_ONLY=conv1` runs only the convolutions whose name starts so (for a profiler).

use std::time::Instant;

use alexnet_kernels::conv::{self, ConvShape};
use alexnet_kernels::linear::{self, LinearShape};
use alexnet_kernels::{im2col, pool, relu};

/// Deterministic values in [-1, 1).
fn noise(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Median milliseconds of `runs` calls of `f`, after one untimed call.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn shape(
    batch: usize,
    channels: [usize; 2],
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> ConvShape {
    let output = (input + 2 * padding - kernel) / stride + 1;
    ConvShape {
        batch,
        channels_in: channels[0],
        input: [input, input],
        channels_out: channels[1],
        kernel: [kernel, kernel],
        stride: [stride, stride],
        padding: [padding, padding],
        output: [output, output],
    }
}

fn bench_conv(name: &str, s: &ConvShape) {
    if std::env::var("ALEXNET_BENCH_ONLY").is_ok_and(|only| !name.starts_with(&only)) {
        return;
    }
    let x = noise(s.batch * s.channels_in * s.input[0] * s.input[1], 1);
    let w = noise(
        s.channels_out * s.channels_in * s.kernel[0] * s.kernel[1],
        2,
    );
    let b = noise(s.channels_out, 3);
    let dy = noise(s.batch * s.channels_out * s.output[0] * s.output[1], 4);
    let forward = median_ms(3, || drop(conv::forward(&x, &w, Some(&b), s)));
    // A first layer (one to three input channels) needs no input gradient in training.
    let input_grad = s.channels_in > 3;
    let backward = median_ms(3, || drop(conv::backward(&x, &w, &dy, s, input_grad)));
    let algorithm = conv::Algorithm::of(s);
    let label = format!("{algorithm:?}").to_lowercase();
    println!("{name:<11} {label:<9} forward {forward:8.2} ms   backward {backward:8.2} ms");
    if algorithm != conv::Algorithm::Im2col {
        let forward = median_ms(3, || drop(im2col::forward(&x, &w, Some(&b), s)));
        let backward = median_ms(3, || drop(im2col::backward(&x, &w, &dy, s, input_grad)));
        println!(
            "{name:<11} {:<9} forward {forward:8.2} ms   backward {backward:8.2} ms",
            "im2col"
        );
    }
}

fn main() {
    let batch = std::env::var("ALEXNET_BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(32);
    println!(
        "batch {batch}, 224 px, {} threads",
        rayon::current_num_threads()
    );
    bench_conv("conv1", &shape(batch, [1, 96], 224, 11, 4, 1));
    // torchvision's ImageNet network: three colour channels, 64 filters, 55x55 maps.
    bench_conv("conv1/in", &shape(batch, [3, 64], 224, 11, 4, 2));
    bench_conv("conv2", &shape(batch, [96, 256], 26, 5, 1, 2));
    bench_conv("conv3", &shape(batch, [256, 384], 12, 3, 1, 1));
    // The small maps of 96 px images.
    bench_conv("conv1/96", &shape(batch, [1, 96], 96, 11, 4, 1));
    bench_conv("conv1/in/96", &shape(batch, [3, 64], 96, 11, 4, 2));
    bench_conv("conv2/96", &shape(batch, [96, 256], 10, 5, 1, 2));
    bench_conv("conv4/96", &shape(batch, [384, 384], 4, 3, 1, 1));
    if std::env::var("ALEXNET_BENCH_ONLY").is_ok() {
        return;
    }

    let s = pool::PoolShape::new(batch * 96, [54, 54], [3, 3], [2, 2]).expect("fits");
    let x = noise(s.planes * 54 * 54, 5);
    let (y, argmax) = pool::forward(&x, &s);
    let forward = median_ms(5, || drop(pool::forward(&x, &s)));
    let backward = median_ms(5, || drop(pool::backward(&y, &argmax, &s)));
    println!("pool1    max       forward {forward:8.2} ms   backward {backward:8.2} ms");

    let mut x = noise(batch * 96 * 54 * 54, 6);
    let dy = x.clone();
    let forward = median_ms(5, || relu::forward_in_place(&mut x));
    let mut grad = dy.clone();
    let backward = median_ms(5, || relu::backward_in_place(&mut grad, &dy));
    println!("relu1    in place  forward {forward:8.2} ms   backward {backward:8.2} ms");

    bench_linear("fc1 (224 px)", batch, [6400, 4096]);
    bench_linear("fc1 (96 px)", batch, [256, 4096]);
    bench_linear("fc2", batch, [4096, 4096]);
    bench_linear("fc3", batch, [4096, 10]);
}

/// A linear layer's forward pass, then its three gradients.
fn bench_linear(name: &str, batch: usize, [inputs, outputs]: [usize; 2]) {
    let s = LinearShape {
        batch,
        inputs,
        outputs,
    };
    let (x, w, b) = (
        noise(batch * inputs, 7),
        noise(inputs * outputs, 8),
        noise(outputs, 9),
    );
    let dy = noise(batch * outputs, 10);
    let forward = median_ms(9, || drop(linear::forward(&x, &w, Some(&b), &s)));
    let all = linear::Wanted {
        input: true,
        parameters: true,
    };
    let backward = median_ms(9, || drop(linear::backward(&x, &w, &dy, &s, all)));
    println!("{name:8} linear    forward {forward:8.2} ms   backward {backward:8.2} ms");
}
