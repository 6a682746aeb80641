//! What a user sees of a run: training curves, the confusion-matrix picture, and the run report.

mod history;
mod plot;
mod run_report;

use std::path::{Path, PathBuf};

use anyhow::Result;

pub use history::{Batch, EpochHistory, SAMPLES_PER_EPOCH, Totals, read_history};
pub use plot::{Curves, SERIES, svg_to_png, write_confusion_svg, write_curves_svg};
pub use run_report::{
    EpochRow, FinalMetrics, JournalEntry, RunReport, append_journal, journal_path,
};

/// The training-curve picture of a run.
pub fn curves_path(dir: &Path) -> PathBuf {
    dir.join("curves.svg")
}

/// Redraws `curves.svg` (and `curves.png` if asked) from the run's logs.
pub fn plot_run(dir: &Path, epochs: usize, png: bool) -> Result<Vec<PathBuf>> {
    let svg = curves_path(dir);
    write_curves_svg(&Curves::from_history(&read_history(dir)), epochs, &svg)?;
    let mut written = vec![svg.clone()];
    if png {
        let png_path = svg.with_extension("png");
        svg_to_png(&svg, &png_path)?;
        written.push(png_path);
    }
    Ok(written)
}
