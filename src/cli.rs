//! The command line: `alexnet train` and `alexnet summary`.

use std::io::IsTerminal;
use std::path::PathBuf;

use alexnet_model::AlexNetConfig;
use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, Parser, Subcommand};

use crate::backend::{self, BackendKind, BackendTask};
use crate::summary;
use crate::training::{self, RunOptions, TrainingConfig};

/// AlexNet (d2l.ai) on Fashion-MNIST with Burn: train, checkpoint, inspect.
#[derive(Debug, Parser)]
#[command(name = "alexnet", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train on Fashion-MNIST; defaults are d2l's protocol (10 epochs, batch 128, SGD lr 0.01, 224 px).
    Train(TrainArgs),
    /// Print each layer's output shape for one image, as d2l's table, and the parameter count.
    Summary(SummaryArgs),
}

/// Which backend runs the work.
#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Compute backend (must be compiled in; default: the fastest compiled in).
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
}

impl BackendArgs {
    fn kind(&self) -> BackendKind {
        self.backend.unwrap_or_else(BackendKind::default_compiled)
    }
}

/// Flags of `alexnet train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Images per SGD step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// SGD learning rate.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub lr: f64,
    /// Side the 28x28 images are resized to (bilinear); at least 65.
    #[arg(long, default_value_t = 224)]
    pub resize: usize,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Seed of weight init, dropout and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory for config, logs, checkpoints and the final model.
    #[arg(long, default_value = "artifacts", value_name = "DIR")]
    pub artifact_dir: PathBuf,
    /// Directory with the Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, then
    /// /usr/share/datasets/fashion-mnist).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Data-loading threads; more than 1 makes the batch order depend on thread timing.
    #[arg(long, default_value_t = 1)]
    pub num_workers: usize,
    /// Replace an earlier run found in the artifact directory.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

impl TrainArgs {
    /// The run configuration these flags describe.
    pub fn config(&self) -> TrainingConfig {
        TrainingConfig::d2l(self.resize)
            .with_epochs(self.epochs)
            .with_batch_size(self.batch_size)
            .with_lr(self.lr)
            .with_limit_train(self.limit_train)
            .with_limit_test(self.limit_test)
            .with_seed(self.seed)
            .with_num_workers(self.num_workers)
    }
}

/// Flags of `alexnet summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Input side (d2l: 224).
    #[arg(long, default_value_t = 224)]
    pub resize: usize,
    #[command(flatten)]
    pub backend: BackendArgs,
}

struct TrainTask<'a>(&'a TrainArgs);

impl BackendTask for TrainTask<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device, label: String) -> Result<()> {
        let args = self.0;
        let config = args.config();
        config.validate()?;
        let options = RunOptions {
            artifact_dir: args.artifact_dir.clone(),
            data_dir: args.data_dir.clone(),
            overwrite: args.overwrite,
            dashboard: std::io::stdout().is_terminal(),
            device_label: label.clone(),
        };
        let outcome = training::train::<B>(device, &config, &options)?;
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

struct SummaryTask(usize);

impl BackendTask for SummaryTask {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device, _label: String) -> Result<()> {
        let config = AlexNetConfig::new().with_image_size(self.0);
        let (rows, parameters) = summary::layer_table::<B::InnerBackend>(&config, &device)?;
        print!("{}", summary::format_table(&rows, parameters));
        Ok(())
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => backend::dispatch(args.backend.kind(), TrainTask(&args))?,
        Command::Summary(args) => backend::dispatch(args.backend.kind(), SummaryTask(args.resize))?,
    }
}
