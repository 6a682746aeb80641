//! SVG to PNG with resvg and the system's fonts: the run's pictures, and the legend drawn over an
//! explanation's heatmap.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{Options, Tree};

/// Renders an SVG file to a PNG file.
pub fn svg_to_png(svg: &Path, png: &Path) -> Result<()> {
    let data = std::fs::read(svg).with_context(|| format!("cannot read {}", svg.display()))?;
    let tree = Tree::from_data(&data, &options())
        .with_context(|| format!("{} is not a valid SVG", svg.display()))?;
    let size = tree.size().to_int_size();
    let mut pixmap = Pixmap::new(size.width(), size.height())
        .ok_or_else(|| anyhow!("{} has an empty size", svg.display()))?;
    resvg::render(&tree, Transform::default(), &mut pixmap.as_mut());
    pixmap
        .save_png(png)
        .with_context(|| format!("cannot write {}", png.display()))
}

/// PNG bytes of an RGB picture `[height][width][3]` with `svg` (text, shapes; of the same size)
/// drawn over it. resvg is built without raster images, so pixels go in underneath.
pub fn png_with_svg_over(rgb: &[u8], [width, height]: [u32; 2], svg: &str) -> Result<Vec<u8>> {
    let mut pixmap = Pixmap::new(width, height).ok_or_else(|| anyhow!("an empty picture"))?;
    for (pixel, rgb) in pixmap.pixels_mut().iter_mut().zip(rgb.chunks_exact(3)) {
        *pixel = resvg::tiny_skia::ColorU8::from_rgba(rgb[0], rgb[1], rgb[2], 255).premultiply();
    }
    let tree = Tree::from_str(svg, &options()).context("the legend is not a valid SVG")?;
    resvg::render(&tree, Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().context("cannot encode the PNG")
}

/// resvg's options with the system's fonts, "sans-serif" (which plotters asks for) mapped to a
/// sans font that is installed.
fn options() -> Options<'static> {
    let mut options = Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_system_fonts();
    let installed: Vec<String> = fonts
        .faces()
        .flat_map(|f| f.families.iter().map(|(name, _)| name.clone()))
        .collect();
    let preferred = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "FreeSans"];
    if let Some(family) = preferred
        .iter()
        .find(|p| installed.iter().any(|i| i == *p))
        .map(|p| p.to_string())
        .or_else(|| installed.first().cloned())
    {
        fonts.set_sans_serif_family(family);
    }
    options
}
