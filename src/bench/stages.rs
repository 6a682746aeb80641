//! `bench --images DIR --stages`: where the time of reading an image folder goes, per image on
//! one core: the file read, the decode (colour conversion included: the decoders convert
//! YCbCr as they go), the conversion to the network's channels, Pillow's resize and crop, the normalisation and the
//! batch tensor; beside it the loader itself on every core, whose difference from the sum of
//! the steps is what thread hand-offs and waiting cost.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::Serialize;

use super::{BenchSettings, FolderBench, cpu_model, load_average, loader_throughput, median};
use crate::data::{Augmentation, Encoded, ImageTransform};

/// The steps of reading one image, in order.
const STEPS: [&str; 6] = [
    "read the file",
    "decode (with colour conversion)",
    "to the network's channels (grey or RGB)",
    "resize and crop (Pillow's bilinear)",
    "normalise",
    "batch tensor",
];

/// One step's cost.
#[derive(Debug, Clone, Serialize)]
pub struct StepTime {
    /// What it does.
    pub step: &'static str,
    /// Milliseconds per image on one core (median of the passes).
    pub ms_per_image: f64,
}

/// What `bench --images --stages` measured.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// The folder.
    pub folder: std::path::PathBuf,
    /// Images per pass.
    pub images: usize,
    /// Channels read.
    pub channels: usize,
    /// The side the shorter side is resized to, and the side kept.
    pub resize: (usize, usize),
    /// Each step on one core.
    pub steps: Vec<StepTime>,
    /// Their sum: one core's milliseconds per image.
    pub ms_per_image: f64,
    /// Images per second one core reads, by that sum.
    pub images_per_sec_per_core: f64,
    /// The loader's threads (the rayon pool the batches are decoded on).
    pub cores: usize,
    /// The loader on all of them, in batches, as training reads (`bench --images`).
    pub loader_images_per_sec: f64,
    /// Milliseconds per image per core the loader spends beyond the steps: hand-offs between
    /// threads, waiting for the slowest image of a batch, cache misses of parallel work.
    pub overhead_ms_per_image: f64,
    /// The load average when it finished.
    pub loadavg: String,
    /// The host's CPU.
    pub cpu: String,
}

impl StageReport {
    /// The figures as a table.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{} images of {} ({} channel(s), shorter side to {}, centre {}x{}), load average {}\n\
             CPU: {}\n\n| step | ms per image, one core | share |\n| --- | ---: | ---: |\n",
            self.images,
            self.folder.display(),
            self.channels,
            self.resize.0,
            self.resize.1,
            self.resize.1,
            self.loadavg,
            self.cpu
        );
        for step in &self.steps {
            let share = 100.0 * step.ms_per_image / self.ms_per_image;
            text += &format!(
                "| {} | {:.3} | {share:.0}% |\n",
                step.step, step.ms_per_image
            );
        }
        text + &format!(
            "| all steps | {:.3} | 100% |\n\none core: {:.0} images/s; the loader on {} cores: \
             {:.0} images/s, {:.3} ms per image per core beyond the steps\n",
            self.ms_per_image,
            self.images_per_sec_per_core,
            self.cores,
            self.loader_images_per_sec,
            self.overhead_ms_per_image
        )
    }
}

/// Times each step of reading every image of the folder on this thread, `settings.iters`
/// passes after `settings.warmup`, then the loader itself.
pub fn loader_stages<B: Backend>(
    device: &B::Device,
    settings: &BenchSettings,
    folder: &FolderBench,
) -> Result<StageReport> {
    let (scanned, channels) = folder.scan()?;
    let files: Vec<_> = scanned
        .train
        .iter()
        .chain(&scanned.val)
        .map(|f| scanned.root.join(&f.path))
        .collect();
    let transform = ImageTransform::new(settings.resize(), channels);
    let pass = || time_steps::<B>(&files, &transform, settings.batch, device);
    for _ in 0..settings.warmup {
        pass()?;
    }
    let passes = (0..settings.iters.max(1))
        .map(|_| pass())
        .collect::<Result<Vec<_>>>()?;
    let images = files.len().max(1) as f64;
    let steps: Vec<StepTime> = STEPS
        .iter()
        .enumerate()
        .map(|(i, &step)| StepTime {
            step,
            ms_per_image: 1e3 * median(passes.iter().map(|p| p[i]).collect()) / images,
        })
        .collect();
    let ms_per_image: f64 = steps.iter().map(|s| s.ms_per_image).sum();
    let loader = loader_throughput::<B>(device, settings, folder)?;
    let cores = rayon::current_num_threads();
    let loader_ms_per_image_per_core = 1e3 * cores as f64 / loader.images_per_sec;
    Ok(StageReport {
        folder: folder.dir.clone(),
        images: files.len(),
        channels,
        resize: (
            transform.preprocess.resize_to(transform.side),
            transform.side,
        ),
        steps,
        ms_per_image,
        images_per_sec_per_core: 1e3 / ms_per_image,
        cores,
        loader_images_per_sec: loader.images_per_sec,
        overhead_ms_per_image: loader_ms_per_image_per_core - ms_per_image,
        loadavg: load_average(),
        cpu: cpu_model(),
    })
}

/// One pass over `files`, one at a time: the seconds each of [`STEPS`] took in all.
fn time_steps<B: Backend>(
    files: &[std::path::PathBuf],
    transform: &ImageTransform,
    batch: usize,
    device: &B::Device,
) -> Result<[f64; STEPS.len()]> {
    let mut seconds = [0.0; STEPS.len()];
    let values = transform.values();
    let mut lap = {
        let mut clock = Instant::now();
        move |seconds: &mut [f64; STEPS.len()], step: usize| {
            let now = Instant::now();
            seconds[step] += (now - clock).as_secs_f64();
            clock = now;
        }
    };
    for chunk in files.chunks(batch.max(1)) {
        let mut out = vec![0f32; values * chunk.len()];
        for (path, dst) in chunk.iter().zip(out.chunks_exact_mut(values)) {
            lap(&mut seconds, 5);
            let bytes = read(path)?;
            lap(&mut seconds, 0);
            let name = path.display().to_string();
            let image = Encoded::Bytes {
                name: &name,
                bytes: &bytes,
            }
            .decode()
            .with_context(|| format!("cannot decode {}", path.display()))?;
            lap(&mut seconds, 1);
            let pixels = transform.pixels(&image);
            lap(&mut seconds, 2);
            transform.resize(&pixels, (&Augmentation::default(), (0, 0)), dst);
            lap(&mut seconds, 3);
            transform.normalise(dst);
            lap(&mut seconds, 4);
        }
        let shape = [
            chunk.len(),
            transform.channels,
            transform.side,
            transform.side,
        ];
        drop(Tensor::<B, 4>::from_data(TensorData::new(out, shape), device).into_data());
        lap(&mut seconds, 5);
    }
    Ok(seconds)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
