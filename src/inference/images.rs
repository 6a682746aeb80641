//! Turning an image file of any size and colour into a 28x28 Fashion-MNIST-like picture.

use std::sync::Arc;

use anyhow::Result;
use image::imageops::{self, FilterType};
use image::{GrayImage, Luma};

use crate::data::{Encoded, FashionMnistItem, SIDE};

/// Reads `image` (PNG, JPEG, GIF, BMP, TIFF, WebP, PNM, ICO), converts colour to grey, pads it
/// to a square with the background colour, and shrinks it to 28x28 as Fashion-MNIST's images
/// were made. `invert` turns dark objects on a light background (most photos) into light on dark.
/// The result is a 28x28 item (label 0) ready for the batcher.
pub fn load_image(image: Encoded, invert: bool) -> Result<FashionMnistItem> {
    let decoded = image.decode()?;
    let mut grey = decoded.to_luma8();
    if invert {
        imageops::invert(&mut grey);
    }
    let square = pad_to_square(&grey);
    let small = if square.width() as usize == SIDE {
        square
    } else {
        imageops::resize(&square, SIDE as u32, SIDE as u32, FilterType::Triangle)
    };
    Ok(FashionMnistItem {
        pixels: Arc::from(small.into_raw()),
        label: 0,
    })
}

/// Centres `image` on a square canvas filled with its darkest border value (the background).
fn pad_to_square(image: &GrayImage) -> GrayImage {
    let (w, h) = image.dimensions();
    if w == h {
        return image.clone();
    }
    let side = w.max(h);
    let border = (0..w)
        .flat_map(|x| [image.get_pixel(x, 0)[0], image.get_pixel(x, h - 1)[0]])
        .chain((0..h).flat_map(|y| [image.get_pixel(0, y)[0], image.get_pixel(w - 1, y)[0]]))
        .min()
        .unwrap_or(0);
    let mut canvas = GrayImage::from_pixel(side, side, Luma([border]));
    imageops::overlay(
        &mut canvas,
        image,
        ((side - w) / 2) as i64,
        ((side - h) / 2) as i64,
    );
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    #[test]
    fn colour_images_of_any_size_become_28x28_grey() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.png");
        let mut img = RgbImage::from_pixel(90, 40, Rgb([0, 0, 0]));
        for x in 30..60 {
            for y in 5..35 {
                img.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        img.save(&path).unwrap();
        let prepared = load_image(Encoded::File(&path), false).unwrap();
        let px = &prepared.pixels;
        assert_eq!(px.len(), SIDE * SIDE);
        assert!(px[14 * SIDE + 14] > 200, "centre is the white object");
        assert!(
            px[0] < 10 && px[SIDE * SIDE - 1] < 10,
            "padding is the black background"
        );
        let inverted = load_image(Encoded::File(&path), true).unwrap();
        assert!(inverted.pixels[14 * SIDE + 14] < 50);
    }

    #[test]
    fn non_images_are_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.png");
        std::fs::write(&path, "not an image").unwrap();
        let err = format!("{:#}", load_image(Encoded::File(&path), false).unwrap_err());
        assert!(
            err.contains("notes.png") && err.contains("not a readable image"),
            "{err}"
        );
    }
}
