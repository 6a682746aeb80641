//! `alexnet eval`: evaluate a record on the test (or training) split.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use super::{BackendArgs, ModelArgs};
use crate::backend::BackendTask;
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
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Evaluation on the chosen backend, without autodiff.
pub struct EvalTask<'a>(pub &'a EvalArgs);

impl BackendTask for EvalTask<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>, _label: String) -> Result<()> {
        let device = devices.into_iter().next().expect("one device");
        let args = self.0;
        if args.batch_size == 0 || args.limit == Some(0) {
            anyhow::bail!("--batch-size and --limit must be at least 1");
        }
        let model = inference::load_model::<B::InnerBackend>(
            &args.model.artifact_dir,
            &args.model.checkpoint,
            &device,
        )?;
        let data = FashionMnist::load(args.split, args.data_dir.as_deref())?.truncated(args.limit);
        let (loss, confusion) = evaluation::evaluate(
            &model.net,
            data,
            model.config.image_size,
            args.batch_size,
            &device,
        );
        let report = Evaluation::new(&model.source, args.split, loss, confusion);
        let path = args.model.artifact_dir.join("eval.json");
        report.save_json(&path)?;
        let picture = args.model.artifact_dir.join("confusion.svg");
        crate::report::write_confusion_svg(&report, &picture)?;
        if args.png {
            crate::report::svg_to_png(&picture, &picture.with_extension("png"))?;
        }
        match args.json {
            true => println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serialises")
            ),
            false => print!(
                "{}\nwrote {} and {}\n",
                report.to_text(),
                path.display(),
                picture.display()
            ),
        }
        Ok(())
    }
}
