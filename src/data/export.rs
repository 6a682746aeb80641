//! Fashion-MNIST written out as an image folder (one PNG per image, one folder per class), so
//! that a folder run can be tried, and compared with the IDX files, on real data.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::data::dataset::Dataset;
use image::GrayImage;

use super::folder::class_folder_name;
use super::{FashionMnist, SIDE};

/// Writes every image of `data` to `out/<class>/<index>.png`, `classes` naming the labels (the
/// index in the split, five digits, so that the folder's sorted order is the split's order);
/// returns how many. `out` must be missing or empty.
pub fn export_png_folder(data: &FashionMnist, classes: &[String], out: &Path) -> Result<usize> {
    if out.exists() && fs::read_dir(out).map_or(true, |mut d| d.next().is_some()) {
        bail!(
            "{} already exists and is not empty; choose a new folder",
            out.display()
        );
    }
    for class in classes {
        let dir = out.join(class_folder_name(class));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for index in 0..data.len() {
        let item = data.get(index).expect("index in range");
        let class = class_folder_name(&classes[item.label as usize]);
        let path = out.join(class).join(format!("{index:05}.png"));
        let image = GrayImage::from_raw(SIDE as u32, SIDE as u32, item.pixels.to_vec())
            .expect("28x28 pixels");
        image
            .save(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(data.len())
}
