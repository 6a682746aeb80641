//! Pictures of a run: d2l's training curves and the confusion-matrix heat map, as SVG (plotters)
//! and optionally PNG (rendered from the SVG with resvg).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::evaluation::Evaluation;
use crate::run::EpochHistory;

/// The three series of d2l's figure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curves {
    /// (fractional epoch, running train loss), several points per epoch.
    pub train_loss: Vec<(f64, f64)>,
    /// (fractional epoch, running train accuracy).
    pub train_acc: Vec<(f64, f64)>,
    /// (epoch, test accuracy), once per evaluated epoch.
    pub test_acc: Vec<(f64, f64)>,
}

impl Curves {
    /// The curves of a run's history.
    pub fn from_history(history: &[EpochHistory]) -> Self {
        let mut curves = Curves::default();
        for epoch in history {
            for (x, loss, acc) in epoch.train_samples() {
                curves.train_loss.push((x, loss));
                curves.train_acc.push((x, acc));
            }
            if let Some(test) = epoch.test_totals() {
                curves.test_acc.push((epoch.epoch as f64, test.accuracy));
            }
        }
        curves
    }
}

/// Legend labels, in drawing order.
pub const SERIES: [&str; 3] = ["train loss", "train acc", "test acc"];

fn plot_error(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the plot: {err}")
}

/// Draws `curves` over epochs `1..=epochs` (d2l's x axis) into an SVG file.
pub fn write_curves_svg(curves: &Curves, epochs: usize, path: &Path) -> Result<()> {
    let x_start = if epochs > 1 { 1.0 } else { 0.0 };
    let y_max = curves
        .train_loss
        .iter()
        .map(|p| p.1)
        .fold(1.0f64, f64::max)
        .min(10.0)
        * 1.05;
    let root = SVGBackend::new(path, (640, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(x_start..epochs.max(1) as f64, 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(epochs.clamp(2, 11))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(plot_error)?;
    let in_view = |points: &[(f64, f64)]| -> Vec<(f64, f64)> {
        points.iter().copied().filter(|p| p.0 >= x_start).collect()
    };
    let styles = [
        BLUE.stroke_width(2),
        MAGENTA.stroke_width(2),
        GREEN.stroke_width(2),
    ];
    let series = [&curves.train_loss, &curves.train_acc, &curves.test_acc];
    for ((points, style), label) in series.into_iter().zip(styles).zip(SERIES) {
        chart
            .draw_series(LineSeries::new(in_view(points), style))
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Draws the confusion matrix of `eval` as a heat map with class names and counts.
pub fn write_confusion_svg(eval: &Evaluation, path: &Path) -> Result<()> {
    let counts = eval.confusion.counts();
    let n = counts.len();
    let (cell, left, top) = (64i32, 120i32, 60i32);
    let size = (
        (left + cell * n as i32 + 20) as u32,
        (top + cell * n as i32 + 40) as u32,
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let title = format!(
        "confusion matrix, {} split (rows: true, columns: predicted)",
        eval.split
    );
    root.draw(&Text::new(title, (10, 10), ("sans-serif", 16)))
        .map_err(plot_error)?;
    let row_totals: Vec<u64> = counts
        .iter()
        .map(|r| r.iter().sum::<u64>().max(1))
        .collect();
    for (t, row) in counts.iter().enumerate() {
        let y = top + cell * t as i32;
        let name = Text::new(
            eval.classes[t].to_string(),
            (8, y + cell / 2 - 7),
            ("sans-serif", 13),
        );
        root.draw(&name).map_err(plot_error)?;
        for (p, &count) in row.iter().enumerate() {
            let x = left + cell * p as i32;
            let share = count as f64 / row_totals[t] as f64;
            let shade = (255.0 * (1.0 - share)) as u8;
            let fill = RGBColor(shade, shade, 255).filled();
            root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], fill))
                .map_err(plot_error)?;
            let ink = if share > 0.5 { &WHITE } else { &BLACK };
            let label = Text::new(
                count.to_string(),
                (x + 6, y + cell / 2 - 7),
                ("sans-serif", 13).into_font().color(ink),
            );
            root.draw(&label).map_err(plot_error)?;
        }
    }
    for p in 0..n {
        let x = left + cell * p as i32;
        let label = Text::new(
            eval.classes[p].to_string(),
            (x + 2, top - 18),
            ("sans-serif", 10),
        );
        root.draw(&label).map_err(plot_error)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}
