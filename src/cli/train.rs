//! `alexnet train`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use super::BackendArgs;
use super::config_flags::ConfigFlags;
use crate::assess::Assessed;
use crate::backend::{DeviceChoice, Devices, TrainingTask};
use crate::run::RunDir;
use crate::training::{self, Cadence, Display, RunOptions, Start, TrainOutcome};

/// Flags of `alexnet train`. Unset flags take d2l's values, or the saved ones with `--resume`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub flags: ConfigFlags,
    /// Directory for config, logs, checkpoints and the final model.
    #[arg(long, default_value = "artifacts", value_name = "DIR")]
    pub artifact_dir: PathBuf,
    /// Directory with the Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, then
    /// /usr/share/datasets/fashion-mnist).
    #[arg(long, value_name = "DIR", env = "FASHION_MNIST_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Replace an earlier run found in the artifact directory.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Continue the run in the artifact directory from its newest complete checkpoint, with
    /// its saved settings.
    #[arg(long)]
    pub resume: bool,
    /// Start from this config.json (another run's, or edited by hand); flags given beside it
    /// override its fields.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Print the resolved configuration as JSON and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Plain lines instead of the dashboard, also on a terminal (also chosen by NO_COLOR or
    /// TERM=dumb).
    #[arg(long, help_heading = "Output")]
    pub no_dashboard: bool,
    /// Without the dashboard: a progress line every N training batches [default: at most one
    /// a minute].
    #[arg(
        long,
        value_name = "N",
        help_heading = "Output",
        conflicts_with = "quiet"
    )]
    pub log_every: Option<usize>,
    /// Print only the closing lines.
    #[arg(long, help_heading = "Output")]
    pub quiet: bool,
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
    /// The dashboard on a terminal that can show it, unless asked otherwise.
    fn display(&self) -> Result<Display> {
        let env_says_plain = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let plain = !std::io::stdout().is_terminal() || self.no_dashboard || env_says_plain;
        Ok(match (self.quiet, self.log_every, plain) {
            (true, _, _) => Display::Quiet,
            (_, Some(0), _) => anyhow::bail!("--log-every must be at least 1 (batches)"),
            (_, _, false) => Display::Dashboard,
            (_, Some(n), true) => Display::Lines(Cadence::Batches(n)),
            (_, None, true) => Display::Lines(Cadence::Seconds(60.0)),
        })
    }

    /// `--devices`, else `--device`, else the default device.
    pub fn devices(&self) -> Vec<DeviceChoice> {
        match self.devices.is_empty() {
            true => self.backend.device_list(),
            false => self.devices.clone(),
        }
    }

    /// `--resume`, else a new run from `--config` or d2l's protocol.
    fn start(&self) -> Start {
        match self.resume {
            true => Start::Resume,
            false => Start::New {
                base: self.config.clone(),
                overwrite: self.overwrite,
            },
        }
    }
}

/// Training on the chosen backend.
pub struct TrainTask<'a>(pub &'a TrainArgs);

impl TrainingTask for TrainTask<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Devices<B>) -> Result<()> {
        let args = self.0;
        let start = args.start();
        let run = RunDir::new(&args.artifact_dir);
        let plan = training::resolve_config(&run, &start, &args.flags.overrides())?;
        if args.print_config {
            println!("{}", serde_json::to_string_pretty(&plan.config)?);
            return Ok(());
        }
        if let (Some(folder), Start::New { .. }) = (&plan.folder, &start) {
            println!("images: {}", folder.describe());
        }
        let options = RunOptions {
            artifact_dir: args.artifact_dir.clone(),
            data_dir: args.data_dir.clone(),
            start,
            display: args.display()?,
            device_label: devices.label.clone(),
            kernel_cache: devices.kernel_cache,
        };
        let epochs = plan.config.epochs;
        let (log, model_path, assessed) = match training::train::<B>(devices.all, plan, &options)? {
            TrainOutcome::Trained {
                epochs,
                model_path,
                assessed,
            } => (epochs, model_path, assessed),
            TrainOutcome::AlreadyFinished(early_stop) => {
                let how =
                    early_stop.map_or(format!("finished all {epochs} epochs"), |s| s.describe());
                println!(
                    "nothing to resume: the run in {} {how} (raise --epochs to train further)",
                    run.path().display()
                );
                return Ok(());
            }
        };
        let finished = log.epochs();
        let last = finished
            .last()
            .ok_or_else(|| anyhow::anyhow!("training stopped before the first epoch finished"))?;
        println!("final model: {}", model_path.display());
        println!(
            "loss {:.3}, train acc {:.3}, test acc {:.3}",
            last.train_loss, last.train_acc, last.test_acc
        );
        println!(
            "{:.1} examples/sec on {}",
            log.examples_per_sec(),
            devices.label
        );
        if let Some(assessed) = assessed {
            say_assessed(&assessed);
        }
        Ok(())
    }
}

/// Names what the final model's evaluation wrote, with its accuracy, for the user to open.
fn say_assessed(assessed: &Assessed) {
    let eval = &assessed.evaluation;
    let files: Vec<String> = assessed
        .written
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!(
        "final model on {} ({} images): accuracy {:.3}; wrote {}",
        eval.split,
        eval.examples,
        eval.accuracy,
        files.join(", ")
    );
}
