//! What a user sees of a run: training curves, the confusion-matrix picture, and the run report.

mod mistakes;
mod plot;
mod run_report;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::evaluation::Evaluation;
use crate::render::svg_to_png;
use crate::run::{EpochHistory, RunDir};

pub use mistakes::{Drawn, write_mistakes};
pub use plot::{Curves, SERIES, write_confusion_svg, write_curves_svg};
pub use run_report::{EpochRow, EvaluationSummary, FinalMetrics, ImagesSummary, RunReport};

/// Draws the run's `curves.svg` from `history` over epochs `1..=epochs`: what training does after
/// every epoch and `alexnet plot` does from the logs.
pub fn draw_curves(run: &RunDir, history: &[EpochHistory], epochs: usize) -> Result<PathBuf> {
    let path = run.curves_file();
    // Drawn beside it and renamed, so that a kill while drawing leaves the previous picture.
    let partial = crate::run::partial_path(&path);
    write_curves_svg(&Curves::from_history(history), epochs, &partial)?;
    std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Redraws `curves.svg` (and `curves.png` if asked) from the run's logs.
pub fn plot_run(run: &RunDir, epochs: usize, png: bool) -> Result<Vec<PathBuf>> {
    let svg = draw_curves(run, &run.read_history(), epochs)?;
    let mut written = vec![svg.clone()];
    if png {
        let png_path = svg.with_extension("png");
        svg_to_png(&svg, &png_path)?;
        written.push(png_path);
    }
    Ok(written)
}

/// Writes an evaluation into the run: `eval.json` and `confusion.svg` (and `confusion.png` if
/// asked); returns the paths written.
pub fn save_evaluation(run: &RunDir, eval: &Evaluation, png: bool) -> Result<Vec<PathBuf>> {
    let json = run.eval_file();
    // Whole or not at all, as the run's other files: a kill while training ends evaluates its
    // final model must not leave half a file that `report` then reads.
    let text = serde_json::to_string_pretty(eval).expect("evaluations serialise") + "\n";
    crate::run::write_atomically(&json, text.as_bytes())?;
    let picture = run.confusion_file();
    write_confusion_svg(eval, &picture)?;
    let mut written = vec![json, picture.clone()];
    if png {
        let png_path = picture.with_extension("png");
        svg_to_png(&picture, &png_path)?;
        written.push(png_path);
    }
    Ok(written)
}
