//! Random changes to training images, drawn per image from (seed, epoch, image index) so that
//! a resumed run sees exactly the images an uninterrupted run would: a left-right mirror,
//! torchvision's `RandomResizedCrop`, and pad-and-crop (the CIFAR recipe). Burn has no image
//! augmentation; these work on the 8-bit planes in the loader threads, before and around the
//! resize.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::resize::Resize;

/// What to change in each training image; [`Augmentation::default`] changes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Augmentation {
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
    /// `RandomResizedCrop`'s area-fraction range, when on.
    pub crop: Option<[f64; 2]>,
    /// Pad the input by this many black pixels each side, then crop back at random.
    pub pad_crop: usize,
    /// The run's seed.
    pub seed: u64,
    /// Decode JPEGs at a reduced size when that still covers the input (Pillow's `draft`).
    pub jpeg_draft: bool,
}

/// A part of an image: left, top, width, height.
type Rect = (usize, usize, usize, usize);

/// The changes drawn for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Draw {
    flip: bool,
    crop: Option<Rect>,
    /// Where the `side x side` window starts in the padded input, per axis (`0..=2 * pad`).
    window: (usize, usize),
}

/// SplitMix64's finaliser: spreads nearby seeds (epoch 1, 2, …) far apart.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of everything random in `epoch` of a run seeded `seed` (shuffle, dropout), and,
/// with an image index, of that image's augmentation.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    mix(seed ^ mix(epoch as u64))
}

impl Augmentation {
    /// Whether it changes anything.
    pub fn any(&self) -> bool {
        self.hflip || self.crop.is_some() || self.pad_crop > 0
    }

    /// With `jpeg_draft`, the shorter side a reduced decode must keep for an input of `side`
    /// that is resized from a shorter side of `resize_to`: that, or with a random crop enough
    /// for its smallest crop (area fraction `a`, aspect ratio 3/4) to be `side` pixels across.
    pub fn draft_short_side(&self, resize_to: usize, side: usize) -> Option<usize> {
        self.jpeg_draft.then(|| match self.crop {
            Some([a, _]) => (side as f64 / (0.75 * a).sqrt()).ceil() as usize,
            None => resize_to,
        })
    }

    /// The changes for image `index` in `epoch`, of a `width x height` image.
    fn draw(&self, (epoch, index): (usize, usize), (width, height): (usize, usize)) -> Draw {
        let mut rng = StdRng::seed_from_u64(mix(epoch_seed(self.seed, epoch) ^ index as u64));
        let flip = self.hflip && rng.random_bool(0.5);
        let crop = self
            .crop
            .map(|scale| random_resized_crop(&mut rng, scale, width, height));
        let p = self.pad_crop;
        let window = match p {
            0 => (0, 0),
            _ => (rng.random_range(0..=2 * p), rng.random_range(0..=2 * p)),
        };
        Draw { flip, crop, window }
    }

    /// Writes image `index`'s input in `epoch`: its planes (each `width x height` bytes) changed
    /// and resized to `side x side` values each, into `out`. Without a random crop, the shorter
    /// side is resized to `resize_to` and the centre kept (`resize_to` is `side` but for
    /// ImageNet's transform).
    pub fn write(
        &self,
        at: (usize, usize),
        planes: &[&[u8]],
        (width, height): (usize, usize),
        (resize_to, side): (usize, usize),
        out: &mut [f32],
    ) {
        if !self.any() {
            let resize = Resize::cropped(width, height, resize_to, side);
            for (plane, dst) in planes.iter().zip(out.chunks_exact_mut(side * side)) {
                resize.resize_into(plane, dst);
            }
            return;
        }
        let draw = self.draw(at, (width, height));
        let (x, y, w, h) = draw.crop.unwrap_or((0, 0, width, height));
        let resize = match draw.crop {
            Some(_) => Resize::stretch(w, h, side),
            None => Resize::cropped(width, height, resize_to, side),
        };
        let mut part = vec![0u8; w * h];
        for (plane, dst) in planes.iter().zip(out.chunks_exact_mut(side * side)) {
            for (row, src) in part
                .chunks_exact_mut(w)
                .zip(plane.chunks_exact(width).skip(y))
            {
                row.copy_from_slice(&src[x..x + w]);
                if draw.flip {
                    row.reverse();
                }
            }
            resize.resize_into(&part, dst);
            if self.pad_crop > 0 {
                shift(dst, side, self.pad_crop, draw.window);
            }
        }
    }
}

/// torchvision's `RandomResizedCrop.get_params`: ten tries at an area fraction within
/// `scale` and an aspect ratio within 3/4..4/3 (log-uniform), else the largest centred crop
/// within those ratios.
fn random_resized_crop(
    rng: &mut StdRng,
    [low, high]: [f64; 2],
    width: usize,
    height: usize,
) -> Rect {
    let area = (width * height) as f64;
    let (ratio_low, ratio_high) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(low..=high);
        let aspect = rng.random_range(ratio_low..=ratio_high).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if (1..=width).contains(&w) && (1..=height).contains(&h) {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (left, top, w, h);
        }
    }
    let ratio = width as f64 / height as f64;
    let (w, h) = if ratio < 3.0 / 4.0 {
        (
            width,
            ((width as f64 / (3.0 / 4.0)).round() as usize).min(height),
        )
    } else if ratio > 4.0 / 3.0 {
        (
            ((height as f64 * 4.0 / 3.0).round() as usize).min(width),
            height,
        )
    } else {
        (width, height)
    };
    ((width - w) / 2, (height - h) / 2, w, h)
}

/// Pads a `side x side` plane by `pad` zeros each side and keeps the `side x side` window at
/// `(left, top)` of the padded plane.
fn shift(plane: &mut [f32], side: usize, pad: usize, (left, top): (usize, usize)) {
    let source = plane.to_vec();
    let at = |v: usize, offset: usize| (v + offset).checked_sub(pad).filter(|&s| s < side);
    for y in 0..side {
        for x in 0..side {
            plane[y * side + x] = match (at(x, left), at(y, top)) {
                (Some(sx), Some(sy)) => source[sy * side + sx],
                _ => 0.0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(width: usize, height: usize) -> Vec<u8> {
        (0..width * height).map(|i| (i * 37 % 251) as u8).collect()
    }

    fn input(
        augment: &Augmentation,
        at: (usize, usize),
        pixels: &[u8],
        size: (usize, usize),
    ) -> Vec<f32> {
        let mut out = vec![0.0; 32 * 32];
        augment.write(at, &[pixels], size, (32, 32), &mut out);
        out
    }

    #[test]
    fn the_same_seed_epoch_and_index_give_the_same_image() {
        let pixels = image(40, 30);
        let all = Augmentation {
            hflip: true,
            crop: Some([0.08, 1.0]),
            pad_crop: 4,
            seed: 7,
            jpeg_draft: false,
        };
        let a = input(&all, (3, 11), &pixels, (40, 30));
        assert_eq!(a, input(&all, (3, 11), &pixels, (40, 30)));
        assert_ne!(a, input(&all, (4, 11), &pixels, (40, 30)), "another epoch");
        assert_ne!(a, input(&all, (3, 12), &pixels, (40, 30)), "another image");
        let other_seed = Augmentation { seed: 8, ..all };
        assert_ne!(a, input(&other_seed, (3, 11), &pixels, (40, 30)));
    }

    #[test]
    fn nothing_on_is_the_plain_resize() {
        let pixels = image(40, 30);
        let mut plain = vec![0.0; 32 * 32];
        Resize::new(40, 30, 32).resize_into(&pixels, &mut plain);
        assert_eq!(
            input(&Augmentation::default(), (1, 0), &pixels, (40, 30)),
            plain
        );
    }

    #[test]
    fn a_flip_mirrors_the_rows() {
        let pixels = image(32, 32);
        let flip = Augmentation {
            hflip: true,
            ..Default::default()
        };
        let draws: Vec<bool> = (0..64).map(|i| flip.draw((1, i), (32, 32)).flip).collect();
        let flipped = draws.iter().position(|&f| f).unwrap();
        let kept = draws.iter().position(|&f| !f).unwrap();
        let out = input(&flip, (1, flipped), &pixels, (32, 32));
        let same = input(&flip, (1, kept), &pixels, (32, 32));
        for y in 0..32 {
            for x in 0..32 {
                assert_eq!(out[y * 32 + x], pixels[y * 32 + 31 - x] as f32 / 255.0);
                assert_eq!(same[y * 32 + x], pixels[y * 32 + x] as f32 / 255.0);
            }
        }
        let flips = draws.iter().filter(|&&f| f).count();
        assert!((20..=44).contains(&flips), "about half: {flips} of 64");
    }

    #[test]
    fn crops_keep_to_the_image_and_the_scale() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..500 {
            let (x, y, w, h) = random_resized_crop(&mut rng, [0.25, 0.5], 60, 40);
            assert!(x + w <= 60 && y + h <= 40, "{x} {y} {w} {h}");
            let fraction = (w * h) as f64 / 2400.0;
            assert!((0.2..=0.56).contains(&fraction), "{fraction}");
        }
    }

    #[test]
    fn pad_crop_shifts_in_black() {
        let mut plane: Vec<f32> = (0..16).map(|v| v as f32 + 1.0).collect();
        // pad 1, window at (0, 2): one column of black on the left, the rows moved up by one.
        shift(&mut plane, 4, 1, (0, 2));
        let expected = [
            0.0, 5.0, 6.0, 7.0, //
            0.0, 9.0, 10.0, 11.0, //
            0.0, 13.0, 14.0, 15.0, //
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(plane, expected);
    }
}
