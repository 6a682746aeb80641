//! `alexnet eval`: evaluate a record on the test (or training) split, or on a labelled folder.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::{AutodiffBackend, Backend};
use clap::Args;

use super::{BackendArgs, ModelArgs, check_batch};
use crate::assess::{Assess, Assessed, NamedImages, assess, run_split};
use crate::backend::{Devices, TrainingTask, count_tuned_keys};
use crate::data::{ImageFiles, ImageFolder, Purpose, ScanOptions, Split, SplitImages};
use crate::inference::{self, LoadedModel};
use crate::run::RunDir;

/// Flags of `alexnet eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The split to evaluate (an image-folder run: test is its held-out images).
    #[arg(long, value_enum, default_value = "test")]
    pub split: Split,
    /// Evaluate on this labelled folder instead: its val/ split if it has one, else all of it;
    /// its class folders must be the run's classes.
    #[arg(long, value_name = "DIR", conflicts_with = "split")]
    pub images: Option<PathBuf>,
    /// Evaluate the first N images only.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// With --images: leave images that cannot be read out (counted in the result) instead of
    /// refusing the folder.
    #[arg(long, requires = "images")]
    pub skip_bad_images: bool,
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

impl EvalArgs {
    /// The images to evaluate and their name in the report: a folder given here, else the
    /// run's own split.
    fn images<B: Backend>(&self, model: &LoadedModel<B>, run: &RunDir) -> Result<NamedImages> {
        let Some(dir) = &self.images else {
            return run_split(run, &model.data, self.split, self.data_dir.as_deref());
        };
        let options = ScanOptions {
            val_fraction: 0.0,
            seed: 0,
            skip_bad: self.skip_bad_images,
            purpose: Purpose::Evaluation,
        };
        let folder = ImageFolder::scan(dir, options)?;
        let files = folder.for_run(&model.data.classes)?;
        let images = SplitImages::Files(ImageFiles::new(folder.root.clone(), files));
        Ok((dir.display().to_string(), images))
    }
}

/// Evaluation on the chosen backend: the network without autodiff, and Grad-CAM on its autodiff
/// form for the gallery of mistakes.
pub struct EvalTask<'a>(pub &'a EvalArgs);

impl TrainingTask for EvalTask<'_> {
    type Output = Result<()>;

    fn run<A: AutodiffBackend>(self, devices: Devices<A>) -> Result<()> {
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
        let run = args.model.run::<A>(&device)?;
        let loaded = inference::load_model::<A>(&run, &args.model.checkpoint, &device)?;
        check_batch(&loaded.config, args.batch_size, "--batch-size")?;
        let (name, images) = args.images(&loaded, &run)?;
        let how = Assess {
            batch_size: args.batch_size,
            skip_bad: args.skip_bad_images,
            png: args.png,
        };
        let images = (name, images.limited(args.limit));
        let Assessed {
            evaluation: report,
            written,
        } = assess(&run, loaded, images, how, &device)?;
        match args.json {
            true => println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serialises")
            ),
            false => print!(
                "{}\nwrote {}\n",
                report.to_text(),
                written
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        Ok(())
    }
}
