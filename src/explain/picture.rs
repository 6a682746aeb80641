//! An explanation as a picture: the map, upsampled bilinearly (as pytorch-grad-cam's
//! `cv2.resize`), in viridis over the image the network saw, half and half as its
//! `show_cam_on_image` blends them, with a colour bar that states the scale.

use alexnet_model::Preprocess;
use anyhow::Result;
use image::imageops::{self, FilterType};
use image::{ImageBuffer, Luma};
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};

use super::Explanation;
use crate::render::png_with_svg_over;

/// The side the image is drawn at, at least: small inputs are enlarged so that the legend fits.
const MIN_SIDE: usize = 224;
/// Room above the image for the title, and right of it for the colour bar and its scale.
const TITLE: usize = 24;
const BAR_MARGIN: usize = 64;
const BAR_WIDTH: usize = 14;

/// What the picture says about the map.
#[derive(Debug, Clone, Copy)]
pub struct Legend<'a> {
    /// The line above the picture: which class's map it is.
    pub title: &'a str,
    /// How much of the heatmap covers the image, 0 to 1.
    pub opacity: f32,
}

/// The network's input `[channels, side, side]` (as the run's reader gives it) with `map` over
/// it, as PNG bytes.
pub fn overlay_png(
    input: &[f32],
    channels: usize,
    preprocess: Preprocess,
    map: &Explanation,
    legend: Legend,
) -> Result<Vec<u8>> {
    let side = ((input.len() / channels) as f64).sqrt() as usize;
    let shown = side.max(MIN_SIDE);
    let heat = upsampled(&map.grid, shown);
    let [width, height] = [shown + BAR_MARGIN, shown + TITLE];
    let mut rgb = vec![255u8; width * height * 3];
    for y in 0..shown {
        for x in 0..shown {
            let (sy, sx) = (y * side / shown, x * side / shown);
            let colour = ViridisRGB.get_color(heat[y * shown + x].clamp(0.0, 1.0));
            let heat = [colour.0, colour.1, colour.2];
            let at = ((y + TITLE) * width + x) * 3;
            for c in 0..3 {
                let value = pixel(input, channels, preprocess, side, [c, sy, sx]);
                let mixed = (1.0 - legend.opacity) * value + legend.opacity * f32::from(heat[c]);
                rgb[at + c] = mixed.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    draw_bar(&mut rgb, width, shown);
    let svg = legend_svg([width, height], shown, legend.title);
    png_with_svg_over(&rgb, [width as u32, height as u32], &svg)
}

/// The map alone, upsampled to `side x side` in viridis, as PNG bytes: for a page that lays it
/// over the image itself, at an opacity of its choice.
pub fn heatmap_png(map: &Explanation, side: usize) -> Vec<u8> {
    let rgb: Vec<u8> = upsampled(&map.grid, side)
        .into_iter()
        .flat_map(|v| {
            let colour = ViridisRGB.get_color(v.clamp(0.0, 1.0));
            [colour.0, colour.1, colour.2]
        })
        .collect();
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut png);
    image::ImageEncoder::write_image(
        encoder,
        &rgb,
        side as u32,
        side as u32,
        image::ExtendedColorType::Rgb8,
    )
    .expect("encoding a PNG in memory cannot fail");
    png
}

/// The map upsampled to `side x side`.
fn upsampled(grid: &[Vec<f32>], side: usize) -> Vec<f32> {
    let (rows, cols) = (grid.len(), grid.first().map_or(0, Vec::len));
    let values: Vec<f32> = grid.iter().flatten().copied().collect();
    let map = ImageBuffer::<Luma<f32>, _>::from_raw(cols as u32, rows as u32, values)
        .expect("rows of equal length");
    imageops::resize(&map, side as u32, side as u32, FilterType::Triangle).into_raw()
}

/// The input's value at `[channel, y, x]` as an 8-bit level (grey inputs give all three).
fn pixel(
    input: &[f32],
    channels: usize,
    preprocess: Preprocess,
    side: usize,
    [c, y, x]: [usize; 3],
) -> f32 {
    let channel = c.min(channels - 1);
    let value = input[(channel * side + y) * side + x];
    let value = match preprocess.mean_std(channel, channels) {
        Some((mean, std)) => value * std + mean,
        None => value,
    };
    255.0 * value
}

/// The colour bar right of the image: viridis from 1 at the top to 0 at the bottom.
fn draw_bar(rgb: &mut [u8], width: usize, shown: usize) {
    let left = shown + 10;
    for y in 0..shown {
        let colour = ViridisRGB.get_color(1.0 - y as f32 / (shown - 1) as f32);
        for x in left..left + BAR_WIDTH {
            let at = ((y + TITLE) * width + x) * 3;
            rgb[at..at + 3].copy_from_slice(&[colour.0, colour.1, colour.2]);
        }
    }
}

/// The title and the bar's scale, as SVG text.
fn legend_svg([width, height]: [usize; 2], shown: usize, title: &str) -> String {
    let title = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let x = shown + 10 + BAR_WIDTH + 4;
    let (top, bottom) = (TITLE + 10, TITLE + shown);
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">
<g font-family="sans-serif" font-size="12" fill="black">
<text x="4" y="16">{title}</text>
<text x="{x}" y="{top}">1</text>
<text x="{x}" y="{bottom}">0</text>
</g></svg>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peak_in_the_grid_stays_where_it_was_when_upsampled() {
        let mut grid = vec![vec![0.0f32; 4]; 4];
        grid[1][2] = 1.0;
        let up = upsampled(&grid, 8);
        let peak = (0..64).max_by(|&a, &b| up[a].total_cmp(&up[b])).unwrap();
        assert_eq!((peak / 8 / 2, peak % 8 / 2), (1, 2));
    }
}
