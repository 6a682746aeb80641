//! `alexnet bench`: throughput of the data pipeline, a training step and inference, d2l-style
//! (step time only, after warm-up, median of timed steps).

use std::path::PathBuf;
use std::time::Instant;

use alexnet_model::AlexNetConfig;
use anyhow::Result;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::ElementConversion;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::Serialize;

use crate::data::{
    Augmentation, BadImages, FashionMnist, FashionMnistBatcher, FashionMnistItem, ImageBatch,
    ImageFiles, ImageFolder, ImageTransform, LoaderOptions, Purpose, Sample, ScanOptions, Split,
    SplitImages,
};
use crate::explain::{GradCam, Target};
use crate::run::TrainingConfig;
use crate::training::Classifier;
use crate::training::optimizer::{Algorithm, Sgd};
use crate::training::warmup::random_batch;

pub mod layers;
mod stages;

pub use stages::{StageReport, loader_stages};

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchSettings {
    /// Images per training step.
    pub batch: usize,
    /// Images per inference pass.
    pub infer_batch: usize,
    /// The network measured (its input side included).
    pub model: AlexNetConfig,
    /// Timed steps; the median is reported.
    pub iters: usize,
    /// Untimed warm-up steps first.
    pub warmup: usize,
    /// Random changes the data pipeline and the image loader make to each image.
    pub augment: Augmentation,
}

impl BenchSettings {
    /// The training run whose step is measured: d2l's protocol for this network and batch.
    fn config(&self) -> TrainingConfig {
        let mut config = TrainingConfig::d2l(self.resize()).with_batch_size(self.batch);
        config.model = self.model.clone();
        config
    }

    /// The input side.
    pub fn resize(&self) -> usize {
        self.model.image_size
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Median images per second.
    pub images_per_sec: f64,
    /// Median seconds per step (the 50th percentile of the step's latency).
    pub median_step_seconds: f64,
    /// The 99th percentile of the step's seconds (nearest rank: with fewer than 100 steps, the
    /// slowest but the last 1%).
    pub p99_step_seconds: f64,
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
    /// The network: `d2l` or `imagenet`.
    pub arch: String,
    /// Input side.
    pub resize: usize,
    /// Forward GFLOP per image.
    pub forward_gflop_per_image: f64,
    /// IDX bytes -> resized (and augmented, when asked) float batch tensor.
    pub data_pipeline: Throughput,
    /// The augmentation the data pipeline made (`none`, or e.g. `hflip,crop,pad-crop 4`).
    pub augment: String,
    /// Forward, backward and SGD update.
    pub train_step: Throughput,
    /// Forward only, no autodiff.
    pub inference: Throughput,
    /// Grad-CAM of the same images (`infer --explain`): the forward pass cut at the last
    /// convolution, the rest on autodiff, one backward pass to that convolution.
    pub explained: Throughput,
    /// The load average when the run finished (1, 5, 15 minutes), for judging noise.
    pub loadavg: String,
    /// The host's CPU: hosts of one machine kind differ, and a speed ratio from one does not
    /// carry over to another.
    pub cpu: String,
}

/// What an augmentation changes, as the bench prints it: `none`, or e.g. `hflip,crop 0.08-1`.
pub fn describe_augmentation(a: &Augmentation) -> String {
    let mut parts = Vec::new();
    if a.hflip {
        parts.push("hflip".to_string());
    }
    if let Some([low, high]) = a.crop {
        parts.push(format!("crop {low}-{high}"));
    }
    if a.jpeg_draft {
        parts.push("jpeg-draft".to_string());
    }
    if a.pad_crop > 0 {
        parts.push(format!("pad-crop {}", a.pad_crop));
    }
    match parts.is_empty() {
        true => "none".into(),
        false => parts.join(","),
    }
}

/// The CPU model as `/proc/cpuinfo` names it, with its family and model numbers (which tell
/// CPU generations apart when the name is generic, as "AMD EPYC" is on some clouds) and whether
/// it has AVX-512 and AMX; "unknown CPU" where that file is missing.
pub fn cpu_model() -> String {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return "unknown CPU".into();
    };
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
    let mut out = field("model name").unwrap_or_else(|| "unknown CPU".into());
    if let (Some(family), Some(model)) = (field("cpu family"), field("model")) {
        out += &format!(" (family {family}, model {model})");
    }
    let features: Vec<&str> = [("avx512f", "AVX-512"), ("amx_tile", "AMX")]
        .into_iter()
        .filter(|(flag, _)| has(flag))
        .map(|(_, name)| name)
        .collect();
    if !features.is_empty() {
        out += &format!(", {}", features.join(", "));
    }
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The nearest-rank percentile `p` (0 to 100) of `values`.
fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Runs `work`, waits for the device, and returns the result with the seconds it took.
fn time<B: Backend, T>(device: &B::Device, work: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let result = work();
    B::sync(device).expect("device sync");
    (result, start.elapsed().as_secs_f64())
}

/// Runs `step` `warmup + iters` times and summarises the timed ones; says how long the
/// warm-up took when `announce` (on a GPU, where it compiles and tunes kernels).
fn measure(
    settings: &BenchSettings,
    (name, announce): (&str, bool),
    batch: usize,
    gflop_per_image: Option<f64>,
    mut step: impl FnMut(),
) -> Throughput {
    let start = Instant::now();
    for _ in 0..settings.warmup {
        step();
    }
    if announce {
        eprintln!(
            "bench: {name} warm-up ({} steps, compiling and tuning kernels) took {:.1} s",
            settings.warmup,
            start.elapsed().as_secs_f64()
        );
    }
    let times: Vec<f64> = (0..settings.iters.max(1))
        .map(|_| {
            let start = Instant::now();
            step();
            start.elapsed().as_secs_f64()
        })
        .collect();
    let seconds = median(times.clone());
    let images_per_sec = batch as f64 / seconds;
    Throughput {
        images_per_sec,
        median_step_seconds: seconds,
        p99_step_seconds: percentile(times, 99.0),
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

/// Measures backend `B` (with autodiff for training, without for inference). Each timed step
/// ends with its result read back to the host, so a GPU's clock stops only when the work is
/// done. `gpu` prints the warm-up times, which are the kernels' compile and tune times there.
pub fn run<B: AutodiffBackend>(
    device: &B::Device,
    label: &str,
    settings: &BenchSettings,
    data_dir: Option<&std::path::Path>,
    gpu: bool,
) -> Result<BenchReport> {
    let config = settings.config();
    let forward_gflop = 2.0 * config.model.forward_macs()? as f64 / 1e9;

    let batcher = FashionMnistBatcher::new(settings.resize()).with_augmentation(settings.augment);
    let pipeline_items = Sample::numbered(items(settings.batch, data_dir), 1);
    let data_pipeline = measure(
        settings,
        ("data pipeline", gpu),
        settings.batch,
        None,
        || {
            let batch: ImageBatch<B::InnerBackend> = batcher.batch(pipeline_items.clone(), device);
            B::InnerBackend::sync(device).expect("device sync");
            drop(batch);
        },
    );

    B::seed(device, config.seed);
    let mut model = Classifier::new(config.model.try_init::<B>(device)?);
    let mut optimizer = <Sgd<B> as Algorithm<B>>::adaptor(&config.optimizer);
    let train_batch = random_batch::<B>(settings.batch, &config.model, device);
    let train_flop = Some(3.0 * forward_gflop);
    let train_step = measure(
        settings,
        ("train step", gpu),
        settings.batch,
        train_flop,
        || {
            let output = model.forward_classification(train_batch.clone());
            let _: f64 = output.loss.clone().into_scalar().elem();
            let grads = GradientsParams::from_grads(output.loss.backward(), &model);
            model = optimizer.step(config.lr, model.clone(), grads);
            B::sync(device).expect("device sync");
        },
    );

    let explainer = GradCam::new(model.net.clone());
    let net = model.valid().net;
    let infer_images =
        random_batch::<B::InnerBackend>(settings.infer_batch, &config.model, device).images;
    let inference = measure(
        settings,
        ("inference", gpu),
        settings.infer_batch,
        Some(forward_gflop),
        || drop(net.forward(infer_images.clone()).into_data()),
    );
    let top_classes = vec![Target::default(); settings.infer_batch];
    let explained = measure(
        settings,
        ("explained", gpu),
        settings.infer_batch,
        None,
        || drop(explainer.explain(infer_images.clone(), &top_classes)),
    );

    Ok(BenchReport {
        device: label.to_string(),
        arch: config.model.arch.to_string(),
        resize: settings.resize(),
        forward_gflop_per_image: forward_gflop,
        data_pipeline,
        augment: describe_augmentation(&settings.augment),
        train_step,
        inference,
        explained,
        loadavg: load_average(),
        cpu: cpu_model(),
    })
}

/// The image folder `bench --images` reads.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderBench {
    /// The folder.
    pub dir: PathBuf,
    /// Channels to read; `None`: as training would choose.
    pub channels: Option<usize>,
    /// Threads making batches.
    pub num_workers: usize,
}

impl FolderBench {
    /// The folder scanned as training scans it (every image, none held out), and the channels
    /// to read: as asked, else as training would choose.
    fn scan(&self) -> Result<(ImageFolder, usize)> {
        let options = ScanOptions {
            val_fraction: 0.0,
            seed: 0,
            skip_bad: false,
            purpose: Purpose::Training,
        };
        let scanned = ImageFolder::scan(&self.dir, options)?;
        let channels = self
            .channels
            .unwrap_or(if scanned.all_grey { 1 } else { 3 });
        Ok((scanned, channels))
    }
}

/// What `bench --images` measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoaderReport {
    /// The folder.
    pub folder: PathBuf,
    /// Images per pass (every image of both splits).
    pub images: usize,
    /// Channels and side read.
    pub channels: usize,
    /// Input side.
    pub resize: usize,
    /// Images per batch.
    pub batch: usize,
    /// Threads making batches.
    pub num_workers: usize,
    /// Seconds to scan the folder (list it and read every header).
    pub scan_seconds: f64,
    /// Seconds of each timed pass.
    pub pass_seconds: Vec<f64>,
    /// Images per second of the median pass.
    pub images_per_sec: f64,
    /// The load average when it finished.
    pub loadavg: String,
    /// The augmentation applied (`none` by default).
    pub augment: String,
    /// The host's CPU.
    pub cpu: String,
}

impl LoaderReport {
    /// The figures as text.
    pub fn to_text(&self) -> String {
        format!(
            "{} images of {} ({} channel(s) at {}x{}, batch {}, {} worker(s)), load average {}\n\
             CPU: {}\nscan          {:>9.2} s (listing and every header)\n\
             image loader  {:>9.1} images/s  (median of {} passes: {}; augmentation: {})\n",
            self.images,
            self.folder.display(),
            self.channels,
            self.resize,
            self.resize,
            self.batch,
            self.num_workers,
            self.loadavg,
            self.cpu,
            self.scan_seconds,
            self.images_per_sec,
            self.pass_seconds.len(),
            self.pass_seconds
                .iter()
                .map(|s| format!("{s:.2} s"))
                .collect::<Vec<_>>()
                .join(", "),
            self.augment
        )
    }
}

/// Decodes and resizes every image of a folder in batches, as training reads it, `iters` times
/// after `warmup` passes; the clock of a pass stops when its last batch is on the device.
pub fn loader_throughput<B: Backend>(
    device: &B::Device,
    settings: &BenchSettings,
    folder: &FolderBench,
) -> Result<LoaderReport> {
    let start = Instant::now();
    let (scanned, channels) = folder.scan()?;
    let scan_seconds = start.elapsed().as_secs_f64();
    let files: Vec<_> = scanned.train.iter().chain(&scanned.val).cloned().collect();
    let images = SplitImages::Files(ImageFiles::new(scanned.root.clone(), files));
    let bad = BadImages::collect();
    let loader = LoaderOptions {
        batch_size: settings.batch,
        shuffle: None,
        num_workers: folder.num_workers,
        transform: ImageTransform::new(settings.resize(), channels),
        bad: bad.clone(),
        first_epoch: 1,
        on_epoch: None,
        augment: settings.augment,
    };
    let count = images.len();
    let pass = || {
        let started = Instant::now();
        for batch in images.clone().loader::<B>(&loader, device).iter() {
            drop(batch.images.into_data());
        }
        started.elapsed().as_secs_f64()
    };
    for _ in 0..settings.warmup {
        pass();
    }
    let pass_seconds: Vec<f64> = (0..settings.iters).map(|_| pass()).collect();
    if let Some(first) = bad.found().first() {
        anyhow::bail!("an image could not be decoded: {first}; fix or remove it");
    }
    Ok(LoaderReport {
        folder: folder.dir.clone(),
        images: count,
        channels,
        resize: settings.resize(),
        batch: settings.batch,
        num_workers: folder.num_workers,
        scan_seconds,
        images_per_sec: count as f64 / median(pass_seconds.clone()),
        pass_seconds,
        loadavg: load_average(),
        cpu: cpu_model(),
        augment: describe_augmentation(&settings.augment),
    })
}

/// The load average (1, 5, 15 minutes), for judging noise.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Per-layer forward and backward times of a fresh network at the training batch size.
pub fn layer_breakdown<B: AutodiffBackend>(
    device: &B::Device,
    settings: &BenchSettings,
) -> Result<Vec<layers::LayerTiming>> {
    let config = settings.config();
    B::seed(device, config.seed);
    let net = config.model.try_init::<B>(device)?;
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
                "{name:<14} {:>9.1} images/s  (batch {}, step p50 {:.1} ms, p99 {:.1} ms{gflops})\n",
                t.images_per_sec,
                t.batch,
                1e3 * t.median_step_seconds,
                1e3 * t.p99_step_seconds
            )
        };
        format!(
            "{}, {} network at {}x{} ({:.2} GFLOP forward per image), load average {}\nCPU: \
             {}\n{}{}{}{}{}               ({:.1}x inference's time per image)\n",
            self.device,
            self.arch,
            self.resize,
            self.resize,
            self.forward_gflop_per_image,
            self.loadavg,
            self.cpu,
            row("data pipeline", &self.data_pipeline),
            match self.augment.as_str() {
                "none" => String::new(),
                augment => format!("               (augmented: {augment})\n"),
            },
            row("train step", &self.train_step),
            row("inference", &self.inference),
            row("explained", &self.explained),
            self.inference.images_per_sec / self.explained.images_per_sec,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{median, percentile};

    #[test]
    fn the_p99_is_the_nearest_rank_and_the_median_the_upper_middle() {
        let hundred: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(hundred.clone(), 99.0), 99.0);
        assert_eq!(percentile(hundred.clone(), 100.0), 100.0);
        assert_eq!(median(hundred), 51.0);
        let few = vec![3.0, 9.0, 1.0, 4.0, 2.0];
        assert_eq!(
            percentile(few.clone(), 99.0),
            9.0,
            "the slowest of fewer than 100"
        );
        assert_eq!(percentile(few, 0.0), 1.0);
    }
}
