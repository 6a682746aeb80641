//! `alexnet bench`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use super::BackendArgs;
use crate::backend::BackendTask;
use crate::bench::{self, BenchSettings};

/// Flags of `alexnet bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
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
    /// Time each layer's forward and backward pass instead (training batch, autodiff backend),
    /// beside Burn's stock layer where this build replaces it (convolution, ReLU, max-pooling).
    #[arg(long)]
    pub layers: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Directory with the Fashion-MNIST files (for the data pipeline; random pixels without).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The benchmark on the chosen backend.
pub struct BenchTask<'a>(pub &'a BenchArgs);

impl BackendTask for BenchTask<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>, label: String) -> Result<()> {
        let device = devices.into_iter().next().expect("one device");
        let args = self.0;
        if args.batch == 0 || args.infer_batch == 0 || args.iters == 0 {
            bail!("--batch, --infer-batch and --iters must be at least 1");
        }
        let settings = BenchSettings {
            batch: args.batch,
            infer_batch: args.infer_batch,
            resize: args.resize,
            iters: args.iters,
            warmup: args.warmup,
        };
        if args.layers {
            let rows = bench::layer_breakdown::<B>(&device, &settings)?;
            match args.json {
                true => println!("{}", serde_json::to_string_pretty(&rows)?),
                false => print!(
                    "{label}, batch {}, {}x{}\n{}",
                    settings.batch,
                    settings.resize,
                    settings.resize,
                    bench::layers::to_text(&rows)
                ),
            }
            return Ok(());
        }
        let report = bench::run::<B>(&device, &label, &settings, args.data_dir.as_deref())?;
        match args.json {
            true => println!("{}", serde_json::to_string_pretty(&report)?),
            false => print!("{}", report.to_text()),
        }
        Ok(())
    }
}
