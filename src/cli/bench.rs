//! `alexnet bench`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use super::BackendArgs;
use crate::backend::{Devices, TrainingTask};
use crate::bench::{self, BenchSettings};

/// Flags of `alexnet bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub settings: BenchSettings,
    /// Time each layer's forward and backward pass instead (training batch, autodiff backend),
    /// beside Burn's stock layer where this build replaces it (convolution, ReLU, max-pooling).
    #[arg(long)]
    pub layers: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Directory with the Fashion-MNIST files (for the data pipeline; random pixels without).
    #[arg(long, value_name = "DIR", env = "FASHION_MNIST_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The benchmark on the chosen backend.
pub struct BenchTask<'a>(pub &'a BenchArgs);

impl TrainingTask for BenchTask<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Devices<B>) -> Result<()> {
        let gpu = devices.kernel_cache.is_some();
        let (device, label) = (devices.main, devices.label);
        let args = self.0;
        let settings = &args.settings;
        if settings.shapes.batch == 0 || settings.shapes.infer_batch == 0 || settings.iters == 0 {
            bail!("--batch, --infer-batch and --iters must be at least 1");
        }
        super::model_config(settings.shapes.resize)?;
        if args.layers {
            let rows = bench::layer_breakdown::<B>(&device, settings)?;
            match args.json {
                true => println!("{}", serde_json::to_string_pretty(&rows)?),
                false => print!(
                    "{label}, batch {}, {}x{}\nCPU: {}\n{}",
                    settings.shapes.batch,
                    settings.shapes.resize,
                    settings.shapes.resize,
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
