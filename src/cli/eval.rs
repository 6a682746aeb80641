//! `alexnet eval`: evaluate a record on the test (or training) split.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::Backend;
use clap::Args;

use super::{BackendArgs, ModelArgs};
use crate::backend::{Devices, InferenceTask, count_tuned_keys};
use crate::data::{FashionMnist, Split};
use crate::evaluation::{self, Evaluation};
use crate::inference;

/// Flags of `alexnet eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The split to evaluate.
    #[arg(long, value_enum, default_value = "test")]
    pub split: Split,
    /// Evaluate the first N images only.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write confusion.png beside confusion.svg.
    #[arg(long)]
    pub png: bool,
    /// Directory with the Fashion-MNIST files.
    #[arg(long, value_name = "DIR", env = "FASHION_MNIST_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Evaluation on the chosen backend, without autodiff.
pub struct EvalTask<'a>(pub &'a EvalArgs);

impl InferenceTask for EvalTask<'_> {
    type Output = Result<()>;

    fn run<B: Backend>(self, devices: Devices<B>) -> Result<()> {
        if let Some(cache) = &devices.kernel_cache {
            eprintln!(
                "kernels: the first batches compile and tune GPU kernels ({} tuned kernels \
                 cached in {}; `alexnet warmup` does this once, ahead)",
                count_tuned_keys(cache),
                cache.display()
            );
        }
        let device = devices.main;
        let args = self.0;
        if args.batch_size == 0 || args.limit == Some(0) {
            anyhow::bail!("--batch-size and --limit must be at least 1");
        }
        let model = inference::load_model::<B>(&args.model.run(), &args.model.checkpoint, &device)?;
        let data = FashionMnist::load(args.split, args.data_dir.as_deref())?.truncated(args.limit);
        let (loss, confusion) = evaluation::evaluate(
            &model.net,
            data,
            model.config.image_size,
            args.batch_size,
            &device,
        );
        let report = Evaluation::new(&model.source, args.split, loss, confusion);
        let written = crate::report::save_evaluation(&args.model.run(), &report, args.png)?;
        match args.json {
            true => println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serialises")
            ),
            false => print!(
                "{}\nwrote {} and {}\n",
                report.to_text(),
                written[0].display(),
                written[1].display()
            ),
        }
        Ok(())
    }
}
