//! `alexnet warmup`: compile and tune a GPU backend's kernels ahead of the work.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use serde::Serialize;

use super::{BackendArgs, ShapeArgs};
use crate::backend::{Devices, TrainingTask, count_tuned_keys};
use crate::data::Split;
use crate::run::TrainingConfig;
use crate::training::warmup::{self, Phase, PhaseTiming};

/// Flags of `alexnet warmup`.
#[derive(Debug, Args)]
pub struct WarmupArgs {
    /// The training batch (also the test pass's and `eval`'s), the inference batch (`infer`
    /// of one image is warmed up as well) and the input side.
    #[command(flatten)]
    pub shapes: ShapeArgs,
    /// Training images per epoch, for the size of its last batch [default: all 60,000].
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Test images, for the size of the test pass's last batch [default: all 10,000].
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// What `warmup --json` prints.
#[derive(Debug, Serialize)]
struct WarmupReport {
    device: String,
    kernel_cache: Option<PathBuf>,
    phases: Vec<PhaseTiming>,
    /// Autotune results added by this run (0 when the cache was already warm).
    tuned_keys: usize,
    /// Autotune results in the cache now.
    cached_keys: usize,
    seconds: f64,
}

impl WarmupArgs {
    /// Every phase `train`, `eval`, `infer` and `bench` meet at these sizes, each once (the
    /// training phases are distinct by construction).
    fn phases(&self) -> Vec<Phase> {
        let train = self.limit_train.unwrap_or(Split::Train.full_len());
        let test = self.limit_test.unwrap_or(Split::Test.full_len());
        let mut phases = Phase::of_training(self.shapes.batch, train, test);
        phases.extend([Phase::Infer(self.shapes.infer_batch), Phase::Infer(1)]);
        phases.dedup(); // `--infer-batch 1`
        phases
    }
}

/// The warm-up on the chosen backend.
pub struct WarmupTask<'a>(pub &'a WarmupArgs);

impl TrainingTask for WarmupTask<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Devices<B>) -> Result<()> {
        let args = self.0;
        if args.limit_train == Some(0) {
            bail!("--limit-train must be at least 1");
        }
        args.shapes.check()?;
        // The steps of d2l's protocol for this network at these sizes: its optimizer and
        // learning rate.
        let mut config = TrainingConfig::d2l(args.shapes.resize).with_batch_size(args.shapes.batch);
        config.model = args.shapes.model()?;
        let cache = devices.kernel_cache.clone();
        if !args.json {
            match &cache {
                Some(dir) => println!(
                    "{}: kernel cache {} ({} tuned kernels)",
                    devices.label,
                    dir.display(),
                    count_tuned_keys(dir)
                ),
                None => println!("{}: a CPU backend, nothing to compile", devices.label),
            }
        }
        let start = Instant::now();
        let phases = warmup::warm_up::<B>(
            &devices.main,
            &config,
            &args.phases(),
            cache.as_deref(),
            |t| {
                if !args.json {
                    println!(
                        "{:<28} {:>8.1} s, {} kernels tuned",
                        t.phase, t.seconds, t.tuned_keys
                    );
                }
            },
        )?;
        let report = WarmupReport {
            device: devices.label,
            tuned_keys: phases.iter().map(|p| p.tuned_keys).sum(),
            cached_keys: cache.as_deref().map_or(0, count_tuned_keys),
            kernel_cache: cache,
            phases,
            seconds: start.elapsed().as_secs_f64(),
        };
        match args.json {
            true => println!("{}", serde_json::to_string_pretty(&report)?),
            false => println!(
                "warm-up done in {:.1} s: {} kernels tuned now, {} in the cache",
                report.seconds, report.tuned_keys, report.cached_keys
            ),
        }
        Ok(())
    }
}
