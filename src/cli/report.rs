//! `alexnet plot` and `alexnet report`: pictures and summaries of any run, even an interrupted one.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

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
