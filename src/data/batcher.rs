//! Turning Fashion-MNIST items into `[batch, 1, side, side]` tensors in `[0, 1]`.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

use super::{FashionMnistItem, SIDE};

/// Separable bilinear resampling of 28x28 grey images, computed as PIL's `Image.resize(…,
/// BILINEAR)` does (what torchvision's `Resize` calls in d2l): a triangle filter over pixel
/// centres, widened when shrinking, each pass rounded to 8 bits.
#[derive(Debug, Clone)]
pub struct BilinearResize {
    side: usize,
    /// For each output coordinate: the first input index and the weights from there on.
    taps: Vec<(usize, Vec<f32>)>,
}

impl BilinearResize {
    /// Precomputes the filter taps from 28 to `side` pixels.
    pub fn new(side: usize) -> Self {
        let scale = SIDE as f64 / side as f64;
        let support = scale.max(1.0);
        let taps = (0..side)
            .map(|i| {
                let center = (i as f64 + 0.5) * scale;
                let first = ((center - support + 0.5).floor().max(0.0)) as usize;
                let end = ((center + support + 0.5).floor() as usize).min(SIDE);
                let raw: Vec<f64> = (first..end)
                    .map(|j| {
                        let distance = (j as f64 + 0.5 - center) / support;
                        (1.0 - distance.abs()).max(0.0)
                    })
                    .collect();
                let total: f64 = raw.iter().sum();
                (first, raw.iter().map(|w| (w / total) as f32).collect())
            })
            .collect();
        Self { side, taps }
    }

    /// The output side.
    pub fn side(&self) -> usize {
        self.side
    }

    /// Resamples one 28x28 image into `out` (`side * side` values in `[0, 1]`).
    pub fn resize_into(&self, pixels: &[u8], out: &mut [f32]) {
        let side = self.side;
        // Horizontal pass: 28 rows of `side` columns, rounded to 8 bits as PIL does.
        let mut rows = vec![0f32; SIDE * side];
        for (r, row) in rows.chunks_exact_mut(side).enumerate() {
            let src = &pixels[r * SIDE..(r + 1) * SIDE];
            for (o, (first, weights)) in row.iter_mut().zip(&self.taps) {
                let v: f32 = weights
                    .iter()
                    .zip(&src[*first..])
                    .map(|(w, &p)| w * p as f32)
                    .sum();
                *o = round_to_byte(v);
            }
        }
        // Vertical pass, then scale to [0, 1] as `ToTensor` does.
        for (r, (first, weights)) in self.taps.iter().enumerate() {
            let dst = &mut out[r * side..(r + 1) * side];
            dst.fill(0.0);
            for (k, w) in weights.iter().enumerate() {
                let src = &rows[(first + k) * side..(first + k + 1) * side];
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += w * s);
            }
            dst.iter_mut().for_each(|d| *d = round_to_byte(*d) / 255.0);
        }
    }
}

/// `v.round().clamp(0.0, 255.0)`, computed so that the compiler vectorizes it: `f32::round`
/// (halves away from zero) is a libm call in every lane, which made it half the resize's time.
/// `v + 0.5` is exact in f64, so truncating it rounds exactly as `round` does for `v >= 0`, and
/// the clamp maps every negative `v` to 0 either way.
fn round_to_byte(v: f32) -> f32 {
    ((v as f64 + 0.5) as i32).clamp(0, 255) as f32
}

/// A batch of images `[batch, 1, side, side]` and their class indices `[batch]`.
#[derive(Debug, Clone)]
pub struct FashionMnistBatch<B: Backend> {
    /// Pixels in `[0, 1]`.
    pub images: Tensor<B, 4>,
    /// Labels in `0..10`.
    pub targets: Tensor<B, 1, Int>,
}

/// Resizes and stacks items on the host, then moves one contiguous buffer to the device.
#[derive(Debug, Clone)]
pub struct FashionMnistBatcher {
    resize: BilinearResize,
}

impl FashionMnistBatcher {
    /// A batcher producing `side x side` images.
    pub fn new(side: usize) -> Self {
        Self {
            resize: BilinearResize::new(side),
        }
    }

    /// Resized pixels of `items`, concatenated (`items.len() * side * side` values). The images
    /// are resized in parallel: one loader thread resizes about 13,000 images a second at 224
    /// px, and a GPU trains several times faster than that.
    pub fn pixels(&self, items: &[FashionMnistItem]) -> Vec<f32> {
        let area = self.resize.side() * self.resize.side();
        let mut out = vec![0f32; items.len() * area];
        items
            .par_iter()
            .zip(out.par_chunks_exact_mut(area))
            .for_each(|(item, dst)| self.resize.resize_into(&item.pixels, dst));
        out
    }
}

impl<B: Backend> Batcher<B, FashionMnistItem, FashionMnistBatch<B>> for FashionMnistBatcher {
    fn batch(&self, items: Vec<FashionMnistItem>, device: &B::Device) -> FashionMnistBatch<B> {
        let side = self.resize.side();
        let pixels = TensorData::new(self.pixels(&items), [items.len(), 1, side, side]);
        let labels: Vec<i64> = items.iter().map(|item| item.label as i64).collect();
        FashionMnistBatch {
            images: Tensor::from_data(pixels, device),
            targets: Tensor::from_data(TensorData::new(labels, [items.len()]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize(side: usize, pixels: &[u8]) -> Vec<f32> {
        let mut out = vec![0.0; side * side];
        BilinearResize::new(side).resize_into(pixels, &mut out);
        out
    }

    #[test]
    fn byte_rounding_matches_rounding_halves_away_from_zero() {
        let edges = [
            -1e9,
            -0.7,
            -0.5,
            -0.3,
            0.0,
            0.499_999_97, // the f32 sum 0.49999997 + 0.5 rounds up to 1.0
            0.5,
            1.5,
            2.5,
            127.499_99,
            254.5,
            255.0,
            255.5,
            1e9,
        ];
        let sweep = (0..=300_000).map(|i| i as f32 / 1000.0 - 20.0);
        for v in edges.into_iter().chain(sweep) {
            assert_eq!(round_to_byte(v), v.round().clamp(0.0, 255.0), "at {v}");
        }
    }

    #[test]
    fn identity_at_native_size() {
        let pixels: Vec<u8> = (0..SIDE * SIDE).map(|i| (i * 7 % 256) as u8).collect();
        let out = resize(SIDE, &pixels);
        let expected: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn constant_images_stay_constant() {
        for side in [65, 96, 224] {
            assert!(
                resize(side, &[200; SIDE * SIDE])
                    .iter()
                    .all(|&v| v == 200.0 / 255.0)
            );
        }
    }

    #[test]
    fn upsampling_interpolates_between_pixel_centres() {
        // Columns alternate 0 and 255; at 56 px each output centre sits a quarter pixel from an
        // input centre: 0.75 * 0 + 0.25 * 255 = 63.75 -> 64, and the border copies the edge.
        let pixels: Vec<u8> = (0..SIDE * SIDE)
            .map(|i| if i % 2 == 0 { 0 } else { 255 })
            .collect();
        let out = resize(56, &pixels);
        let row: Vec<u8> = out[..6].iter().map(|v| (v * 255.0).round() as u8).collect();
        assert_eq!(row, [0, 64, 191, 191, 64, 64]);
    }
}
