//! The gallery of an evaluation's most confident wrong predictions: `mistakes.html` (each
//! image's path, its true and predicted class and their probabilities, and its Grad-CAM map)
//! and `mistakes.png` (the pictures on one sheet), so that a user can see where the network
//! looked and fix a wrong label by its path.

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::{GenericImage, RgbImage};

use crate::run::{RunDir, write_atomically};

/// Pictures per row of `mistakes.png`.
const COLUMNS: u32 = 4;

/// One wrong prediction, drawn.
#[derive(Debug, Clone)]
pub struct Drawn {
    /// The image: its path, or `test[i]`.
    pub name: String,
    /// True class and its probability.
    pub truth: (String, f32),
    /// Predicted class and its probability.
    pub predicted: (String, f32),
    /// PNG bytes: the image with the predicted class's Grad-CAM map over it.
    pub picture: Vec<u8>,
}

/// Writes `mistakes.html` and `mistakes.png` into the run (replacing an earlier evaluation's);
/// returns their paths. `split` names the images evaluated.
pub fn write_mistakes(
    run: &RunDir,
    split: &str,
    mistakes: &[Drawn],
) -> Result<[std::path::PathBuf; 2]> {
    let html = run.mistakes_file();
    write_atomically(&html, page(split, mistakes).as_bytes())?;
    let png = html.with_extension("png");
    write_atomically(&png, &sheet(mistakes)?)?;
    Ok([html, png])
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML page, its pictures inline so that it opens anywhere.
fn page(split: &str, mistakes: &[Drawn]) -> String {
    let cards: String = mistakes
        .iter()
        .enumerate()
        .map(|(rank, m)| {
            format!(
                "<figure><img src=\"data:image/png;base64,{}\" alt=\"Grad-CAM of {} over {}\">\
                 <figcaption><b>{}.</b> <code>{}</code><br>predicted <b>{}</b> {:.1}%<br>\
                 true <b>{}</b> {:.1}%</figcaption></figure>\n",
                STANDARD.encode(&m.picture),
                escape(&m.predicted.0),
                escape(&m.name),
                rank + 1,
                escape(&m.name),
                escape(&m.predicted.0),
                100.0 * m.predicted.1,
                escape(&m.truth.0),
                100.0 * m.truth.1,
            )
        })
        .collect();
    let empty = match mistakes.is_empty() {
        true => "<p>No image was predicted wrong.</p>",
        false => "",
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>The most confident mistakes</title><style>\
         body {{ font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }}\
         main {{ display: flex; flex-wrap: wrap; gap: 1rem; }}\
         figure {{ margin: 0; width: 290px; }} img {{ display: block; max-width: 100%; }}\
         code {{ word-break: break-all; }}</style></head><body>\
         <h1>The {} most confident mistakes on {}</h1>\
         <p>Each picture shows where the network looked for the class it predicted (Grad-CAM of \
         the last convolution, 0 to 1). A mistake made with confidence is often a wrong label: \
         the path says which file to check.</p>{empty}<main>\n{cards}</main></body></html>\n",
        mistakes.len(),
        escape(split),
    )
}

/// The pictures on one sheet, [`COLUMNS`] to a row, in rank order.
fn sheet(mistakes: &[Drawn]) -> Result<Vec<u8>> {
    let pictures = mistakes
        .iter()
        .map(|m| image::load_from_memory(&m.picture).map(|p| p.to_rgb8()))
        .collect::<Result<Vec<RgbImage>, _>>()
        .context("cannot read back a drawn mistake")?;
    let (width, height) = pictures.first().map_or((1, 1), |p| (p.width(), p.height()));
    let rows = (pictures.len() as u32).div_ceil(COLUMNS).max(1);
    let columns = (pictures.len() as u32).clamp(1, COLUMNS);
    let mut sheet = RgbImage::from_pixel(columns * width, rows * height, image::Rgb([255; 3]));
    for (i, picture) in pictures.iter().enumerate() {
        let (x, y) = (i as u32 % COLUMNS * width, i as u32 / COLUMNS * height);
        sheet
            .copy_from(picture, x, y)
            .context("the pictures of the sheet differ in size")?;
    }
    let mut png = Vec::new();
    sheet
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("cannot encode mistakes.png")?;
    Ok(png)
}
