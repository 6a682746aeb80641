//! `alexnet train`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use super::BackendArgs;
use crate::backend::{BackendTask, DeviceChoice};
use crate::training::{self, ConfigFlags, RunOptions};

/// Flags of `alexnet train`. Unset flags take d2l's values, or the saved ones with `--resume`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Passes over the training set [default: 10]; with --resume, may be raised.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per SGD step [default: 128].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// SGD learning rate [default: 0.01].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Side the 28x28 images are resized to (bilinear), at least 65 [default: 224].
    #[arg(long)]
    pub resize: Option<usize>,
    /// Train on the first N training images only [default: all 60,000].
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only [default: all 10,000].
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Seed of weight init, dropout and shuffling [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Data-loading threads; more than 1 makes the batch order depend on thread timing
    /// [default: 1].
    #[arg(long)]
    pub num_workers: Option<usize>,
    /// Directory for config, logs, checkpoints and the final model.
    #[arg(long, default_value = "artifacts", value_name = "DIR")]
    pub artifact_dir: PathBuf,
    /// Directory with the Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, then
    /// /usr/share/datasets/fashion-mnist).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Replace an earlier run found in the artifact directory.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Continue the run in the artifact directory from its newest complete checkpoint, with
    /// its saved settings.
    #[arg(long)]
    pub resume: bool,
    /// Data-parallel training on several GPUs (e.g. 0,1): each batch is split across them and
    /// the optimizer runs on the first (Burn's multi-device strategy).
    #[arg(
        long,
        value_name = "D,D,…",
        value_delimiter = ',',
        conflicts_with = "device"
    )]
    pub devices: Vec<DeviceChoice>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

impl TrainArgs {
    /// `--devices`, else `--device`, else the default device.
    pub fn devices(&self) -> Vec<DeviceChoice> {
        match self.devices.is_empty() {
            true => self.backend.device.iter().cloned().collect(),
            false => self.devices.clone(),
        }
    }

    /// The flags that shape the run.
    pub fn flags(&self) -> ConfigFlags {
        ConfigFlags {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            resize: self.resize,
            limit_train: self.limit_train,
            limit_test: self.limit_test,
            seed: self.seed,
            num_workers: self.num_workers,
        }
    }
}

/// Training on the chosen backend.
pub struct TrainTask<'a>(pub &'a TrainArgs);

impl BackendTask for TrainTask<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>, label: String) -> Result<()> {
        let args = self.0;
        let options = RunOptions {
            artifact_dir: args.artifact_dir.clone(),
            data_dir: args.data_dir.clone(),
            overwrite: args.overwrite,
            resume: args.resume,
            dashboard: std::io::stdout().is_terminal(),
            device_label: label.clone(),
        };
        let Some(outcome) = training::train::<B>(devices, &args.flags(), &options)? else {
            return Ok(());
        };
        let epochs = outcome.epochs.epochs();
        let last = epochs
            .last()
            .ok_or_else(|| anyhow::anyhow!("training stopped before the first epoch finished"))?;
        println!("final model: {}", outcome.model_path.display());
        println!(
            "loss {:.3}, train acc {:.3}, test acc {:.3}",
            last.train_loss, last.train_acc, last.test_acc
        );
        println!(
            "{:.1} examples/sec on {label}",
            outcome.epochs.examples_per_sec()
        );
        Ok(())
    }
}
