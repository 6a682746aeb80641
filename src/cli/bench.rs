//! `alexnet bench`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use super::BackendArgs;
use super::config_flags::{Loader, Network, SettingFlags};
use crate::backend::{Devices, TrainingTask};
use crate::bench::{self, BenchSettings};
use crate::run::TrainingConfig;
use crate::training;
use alexnet_model::AlexNetConfig;

/// The sizes a benchmark or a warm-up runs at.
#[derive(Debug, Clone, Args)]
pub struct ShapeArgs {
    /// Images per training step.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Images per inference pass.
    #[arg(long, default_value_t = 256)]
    pub infer_batch: usize,
    /// Input side.
    #[arg(long, default_value_t = 224)]
    pub resize: usize,
    #[command(flatten)]
    pub network: SettingFlags<Network>,
}

impl ShapeArgs {
    /// The network at `--resize`, checked.
    pub fn model(&self) -> Result<AlexNetConfig> {
        super::model_config(&self.network, self.resize)
    }

    /// Checks the sizes: batches of at least one image, within the activation budget of the
    /// network at `--resize`, which itself must fit.
    pub fn check(&self) -> Result<()> {
        if self.batch == 0 || self.infer_batch == 0 {
            bail!("--batch and --infer-batch must be at least 1");
        }
        let config = self.model()?;
        config
            .check_batch(self.batch, true)
            .map_err(|err| anyhow::anyhow!("--batch is too large: {err}"))?;
        super::check_batch(&config, self.infer_batch, "--infer-batch")
    }
}

/// How many steps to time.
#[derive(Debug, Clone, Args)]
pub struct StepArgs {
    #[command(flatten)]
    pub shapes: ShapeArgs,
    /// Timed steps; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
}

impl StepArgs {
    /// The plain settings, checked.
    fn settings(&self) -> Result<BenchSettings> {
        let s = &self.shapes;
        if self.iters == 0 {
            bail!("--iters must be at least 1");
        }
        s.check()?;
        Ok(BenchSettings {
            batch: s.batch,
            infer_batch: s.infer_batch,
            model: s.model()?,
            iters: self.iters,
            warmup: self.warmup,
            augment: Default::default(),
        })
    }
}

/// Flags of `alexnet bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub steps: StepArgs,
    /// Time each layer's forward and backward pass instead (training batch, autodiff backend),
    /// beside Burn's stock layer where this build replaces it (convolution, ReLU, max-pooling).
    #[arg(long)]
    pub layers: bool,
    /// Time reading this image folder instead: decoding and resizing every image at --resize,
    /// in batches of --batch, a pass per timed step (after --warmup passes).
    #[arg(long, value_name = "DIR", conflicts_with = "layers")]
    pub images: Option<PathBuf>,
    /// With --images: time each step of reading an image on one core (file, decode, channels,
    /// resize, normalisation, batch tensor) beside the loader on every core.
    #[arg(long, requires = "images")]
    pub stages: bool,
    /// With --images: channels to read [default: 1 when every image is grey, else 3].
    #[arg(long, value_name = "1|3", requires = "images")]
    pub channels: Option<usize>,
    /// The loader's settings, as `train` takes them.
    #[command(flatten)]
    pub loader: SettingFlags<Loader>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Directory with the Fashion-MNIST files (for the data pipeline; random pixels without).
    #[arg(long, value_name = "DIR", env = "FASHION_MNIST_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

impl BenchArgs {
    /// The loader's settings over d2l's at `--resize`, checked as `train` checks them.
    fn loader_config(&self) -> Result<TrainingConfig> {
        let d2l = TrainingConfig::d2l(self.steps.shapes.resize);
        let mut config = self.loader.overrides().applied_to(d2l);
        config.data.images = self.images.clone();
        config.validate()?;
        Ok(config)
    }
}

/// The benchmark on the chosen backend.
pub struct BenchTask<'a>(pub &'a BenchArgs);

impl TrainingTask for BenchTask<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Devices<B>) -> Result<()> {
        let gpu = devices.kind.is_gpu();
        let (device, label) = (devices.main, devices.label);
        let args = self.0;
        let loader = args.loader_config()?;
        let settings = &BenchSettings {
            augment: training::augmentation(&loader),
            ..args.steps.settings()?
        };
        if let Some(dir) = &args.images {
            let folder = bench::FolderBench {
                dir: dir.clone(),
                channels: args.channels,
                num_workers: loader.num_workers,
            };
            if args.stages {
                let report = bench::loader_stages::<B>(&device, settings, &folder)?;
                match args.json {
                    true => println!("{}", serde_json::to_string_pretty(&report)?),
                    false => print!("{}", report.to_text()),
                }
                return Ok(());
            }
            let report = bench::loader_throughput::<B>(&device, settings, &folder)?;
            match args.json {
                true => println!("{}", serde_json::to_string_pretty(&report)?),
                false => print!("{}", report.to_text()),
            }
            return Ok(());
        }
        if args.layers {
            let rows = bench::layer_breakdown::<B>(&device, settings)?;
            match args.json {
                true => println!("{}", serde_json::to_string_pretty(&rows)?),
                false => print!(
                    "{label}, batch {}, {}x{}\nCPU: {}\n{}",
                    settings.batch,
                    settings.resize(),
                    settings.resize(),
                    bench::cpu_model(),
                    bench::layers::to_text(&rows)
                ),
            }
            return Ok(());
        }
        let report = bench::run::<B>(&device, &label, settings, args.data_dir.as_deref(), gpu)?;
        match args.json {
            true => println!("{}", serde_json::to_string_pretty(&report)?),
            false => print!("{}", report.to_text()),
        }
        Ok(())
    }
}
