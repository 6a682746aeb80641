//! `alexnet plot` and `alexnet report`: pictures and summaries of any run, even an interrupted one.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use super::BackendArgs;
use crate::assess::{Assess, assess, is_current, run_split};
use crate::backend::{Devices, TrainingTask};
use crate::data::Split;
use crate::inference::{self, CheckpointChoice};
use crate::report::{self, RunReport};
use crate::run::RunDir;

/// Flags of `alexnet plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The training run to plot (finished, resumed or interrupted).
    #[arg(long, default_value = "artifacts", value_name = "DIR")]
    pub artifact_dir: PathBuf,
    /// Also write curves.png beside curves.svg.
    #[arg(long)]
    pub png: bool,
}

/// Flags of `alexnet report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The training run to report on.
    #[arg(long, default_value = "artifacts", value_name = "DIR")]
    pub artifact_dir: PathBuf,
    /// Print report.json instead of Markdown.
    #[arg(long)]
    pub json: bool,
    /// Leave the evaluation out: by default the final model (else the newest checkpoint) is
    /// evaluated on the run's validation images, with a gallery of its most confident mistakes,
    /// unless eval.json already holds that evaluation.
    #[arg(long)]
    pub no_gallery: bool,
    /// Directory with the Fashion-MNIST files.
    #[arg(long, value_name = "DIR", env = "FASHION_MNIST_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

fn run_report(run: &RunDir) -> Result<RunReport> {
    let report = RunReport::from_run(run)?;
    if report.epochs.is_empty() {
        bail!(
            "{} has no logged epoch yet; train first",
            run.path().display()
        );
    }
    Ok(report)
}

/// Redraws the training curves from the run's logs.
pub fn plot(args: &PlotArgs) -> Result<()> {
    let run = RunDir::new(&args.artifact_dir);
    let report = run_report(&run)?;
    for path in report::plot_run(&run, report.config.epochs, args.png)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// `report` on the chosen backend: the evaluation and its gallery brought up to date, then the
/// report.
pub struct ReportTask<'a>(pub &'a ReportArgs);

impl TrainingTask for ReportTask<'_> {
    type Output = Result<()>;

    fn run<A: AutodiffBackend>(self, devices: Devices<A>) -> Result<()> {
        let args = self.0;
        let run = RunDir::new(&args.artifact_dir);
        run_report(&run)?;
        if let Err(err) = evaluate_newest::<A>(&run, args.data_dir.as_deref(), &devices.main) {
            eprintln!("warning: no gallery of mistakes: {err:#} (`alexnet eval` writes it)");
        }
        report(args)
    }
}

/// Evaluates the run's final model, else its newest checkpoint, on the images it validated on,
/// unless `eval.json` already holds that evaluation.
fn evaluate_newest<A: AutodiffBackend>(
    run: &RunDir,
    data_dir: Option<&Path>,
    device: &A::Device,
) -> Result<()> {
    let config = run.load_config()?;
    let choice = match run.model_file().exists() {
        true => CheckpointChoice::Final,
        false => CheckpointChoice::Last,
    };
    // Whether the gallery is current is known from the record's path: a current one costs no
    // read of the record.
    let source = inference::resolve(run, &choice)?;
    let (name, images) = run_split(run, &config.data, Split::Test, data_dir)?;
    let images = images.limited(config.limit_test);
    if is_current(run, &source, (&name, &images)) {
        eprintln!(
            "the gallery of mistakes is up to date: {}",
            run.mistakes_file().display()
        );
        return Ok(());
    }
    let loaded = inference::load_model::<A>(run, &choice, device)?;
    eprintln!(
        "evaluating {} on {name} ({} images)",
        loaded.source.display(),
        images.len()
    );
    let how = Assess {
        batch_size: config.batch_size,
        skip_bad: config.data.skip_bad_images,
        png: false,
    };
    let assessed = assess(run, loaded, (name, images), how, device)?;
    for path in &assessed.written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Rebuilds report.json and report.md from the run's files and prints the report.
pub fn report(args: &ReportArgs) -> Result<()> {
    let run = RunDir::new(&args.artifact_dir);
    let report = run_report(&run)?;
    report.save(&run)?;
    match args.json {
        true => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialise")
        ),
        false => print!("{}", report.to_markdown()),
    }
    Ok(())
}
