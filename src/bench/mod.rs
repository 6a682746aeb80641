//! `alexnet bench`: throughput of the data pipeline, a training step and inference, d2l-style
//! (step time only, after warm-up, median of timed steps).

use std::time::Instant;

use alexnet_model::AlexNetConfig;
use anyhow::Result;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Int, Tensor};
use serde::Serialize;

use crate::data::{FashionMnist, FashionMnistBatch, FashionMnistBatcher, FashionMnistItem, Split};
use crate::training::Classifier;

pub mod layers;

/// What to measure (the flags of `alexnet bench`).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchSettings {
    /// Images per training step.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Images per inference pass.
    #[arg(long, default_value_t = 256)]
    pub infer_batch: usize,
    /// Input side.
    #[arg(long, default_value_t = 224)]
    pub resize: usize,
    /// Timed steps; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Median images per second.
    pub images_per_sec: f64,
    /// Median seconds per step.
    pub median_step_seconds: f64,
    /// Achieved GFLOP/s from the analytic FLOP count (absent for the data pipeline).
    pub gflops: Option<f64>,
    /// Images per step.
    pub batch: usize,
}

/// The figures of one `bench` run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Backend and device.
    pub device: String,
    /// Input side.
    pub resize: usize,
    /// Forward GFLOP per image.
    pub forward_gflop_per_image: f64,
    /// IDX bytes -> resized float batch tensor.
    pub data_pipeline: Throughput,
    /// Forward, backward and SGD update.
    pub train_step: Throughput,
    /// Forward only, no autodiff.
    pub inference: Throughput,
    /// The load average when the run finished (1, 5, 15 minutes), for judging noise.
    pub loadavg: String,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `work`, waits for the device, and returns the result with the seconds it took.
fn time<B: Backend, T>(device: &B::Device, work: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let result = work();
    B::sync(device).expect("device sync");
    (result, start.elapsed().as_secs_f64())
}

/// Runs `step` `warmup + iters` times and summarises the timed ones.
fn measure(
    settings: &BenchSettings,
    batch: usize,
    gflop_per_image: Option<f64>,
    mut step: impl FnMut(),
) -> Throughput {
    for _ in 0..settings.warmup {
        step();
    }
    let times: Vec<f64> = (0..settings.iters.max(1))
        .map(|_| {
            let start = Instant::now();
            step();
            start.elapsed().as_secs_f64()
        })
        .collect();
    let seconds = median(times);
    let images_per_sec = batch as f64 / seconds;
    Throughput {
        images_per_sec,
        median_step_seconds: seconds,
        gflops: gflop_per_image.map(|g| g * images_per_sec),
        batch,
    }
}

/// Real training images when the data is installed, else random pixels (same cost).
fn items(count: usize, data_dir: Option<&std::path::Path>) -> Vec<FashionMnistItem> {
    match FashionMnist::load(Split::Train, data_dir) {
        Ok(data) => (0..count)
            .map(|i| data.get(i % data.len()).expect("in range"))
            .collect(),
        Err(_) => (0..count)
            .map(|i| FashionMnistItem {
                pixels: (0..crate::data::PIXELS)
                    .map(|p| ((p * 31 + i * 7) % 256) as u8)
                    .collect(),
                label: (i % 10) as u8,
            })
            .collect(),
    }
}

fn random_batch<B: Backend>(batch: usize, side: usize, device: &B::Device) -> FashionMnistBatch<B> {
    FashionMnistBatch {
        images: Tensor::random(
            [batch, 1, side, side],
            Distribution::Uniform(0.0, 1.0),
            device,
        ),
        targets: Tensor::<B, 1, Int>::from_ints(
            (0..batch)
                .map(|i| (i % 10) as i32)
                .collect::<Vec<_>>()
                .as_slice(),
            device,
        ),
    }
}

/// Measures backend `B` (with autodiff for training, without for inference).
pub fn run<B: AutodiffBackend>(
    device: &B::Device,
    label: &str,
    settings: &BenchSettings,
    data_dir: Option<&std::path::Path>,
) -> Result<BenchReport> {
    let config = AlexNetConfig::new().with_image_size(settings.resize);
    let forward_gflop = 2.0 * config.forward_macs()? as f64 / 1e9;

    let batcher = FashionMnistBatcher::new(settings.resize);
    let pipeline_items = items(settings.batch, data_dir);
    let data_pipeline = measure(settings, settings.batch, None, || {
        let batch: FashionMnistBatch<B::InnerBackend> =
            batcher.batch(pipeline_items.clone(), device);
        B::InnerBackend::sync(device).expect("device sync");
        drop(batch);
    });

    B::seed(device, 0);
    let mut model = Classifier::new(config.try_init::<B>(device)?);
    let mut optimizer = SgdConfig::new().init::<B, Classifier<B>>();
    let train_batch = random_batch::<B>(settings.batch, settings.resize, device);
    let train_step = measure(settings, settings.batch, Some(3.0 * forward_gflop), || {
        let output = model.forward_classification(train_batch.clone());
        let grads = GradientsParams::from_grads(output.loss.backward(), &model);
        model = optimizer.step(0.01, model.clone(), grads);
        B::sync(device).expect("device sync");
    });

    let net = model.valid().net;
    let infer_images =
        random_batch::<B::InnerBackend>(settings.infer_batch, settings.resize, device).images;
    let inference = measure(settings, settings.infer_batch, Some(forward_gflop), || {
        let logits = net.forward(infer_images.clone());
        B::InnerBackend::sync(device).expect("device sync");
        drop(logits);
    });

    Ok(BenchReport {
        device: label.to_string(),
        resize: settings.resize,
        forward_gflop_per_image: forward_gflop,
        data_pipeline,
        train_step,
        inference,
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    })
}

/// Per-layer forward and backward times of a fresh network at the training batch size.
pub fn layer_breakdown<B: AutodiffBackend>(
    device: &B::Device,
    settings: &BenchSettings,
) -> Result<Vec<layers::LayerTiming>> {
    let config = AlexNetConfig::new().with_image_size(settings.resize);
    B::seed(device, 0);
    let net = config.try_init::<B>(device)?;
    Ok(layers::breakdown(&net, device, settings))
}

impl BenchReport {
    /// The figures as text.
    pub fn to_text(&self) -> String {
        let row = |name: &str, t: &Throughput| {
            let gflops = t
                .gflops
                .map_or(String::new(), |g| format!(", {g:.1} GFLOP/s"));
            format!(
                "{name:<14} {:>9.1} images/s  (batch {}, median step {:.3} s{gflops})\n",
                t.images_per_sec, t.batch, t.median_step_seconds
            )
        };
        format!(
            "{} at {}x{} ({:.2} GFLOP forward per image), load average {}\n{}{}{}",
            self.device,
            self.resize,
            self.resize,
            self.forward_gflop_per_image,
            self.loadavg,
            row("data pipeline", &self.data_pipeline),
            row("train step", &self.train_step),
            row("inference", &self.inference),
        )
    }
}
