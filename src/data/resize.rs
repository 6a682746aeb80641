//! Resizing 8-bit image planes as torchvision's `Resize` does on a PIL image, which d2l uses:
//! PIL's bilinear filter (a triangle over pixel centres, widened when shrinking), separable,
//! each pass in Pillow's own fixed-point arithmetic (`Resample.c`: coefficients with 22
//! fractional bits, sums rounded by adding half, clipped to a byte), so that every byte is
//! Pillow's. A square image is resized to `side x side`; any other is
//! resized so that its shorter side is `side` and centre-cropped to `side x side`
//! (torchvision's `Resize(side)` then `CenterCrop(side)`, the usual evaluation transform).
//! ImageNet's evaluation transform resizes the shorter side to more than it keeps
//! (`Resize(256)`, `CenterCrop(224)`): [`Resize::cropped`].

/// Fractional bits of Pillow's fixed-point coefficients for 8-bit images (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The filter taps of one axis: for each output coordinate, the first input index and the
/// weights from there on, in Pillow's fixed point.
#[derive(Debug, Clone, PartialEq)]
struct Taps(Vec<(usize, Vec<i32>)>);

impl Taps {
    /// PIL's bilinear taps from `input` to `output` samples, keeping outputs `keep`, computed
    /// in the order and precision of Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc`.
    fn new(input: usize, output: usize, keep: std::ops::Range<usize>) -> Self {
        let scale = input as f64 / output as f64;
        let support = scale.max(1.0);
        let inverse = 1.0 / support;
        let taps = keep
            .map(|i| {
                let center = (i as f64 + 0.5) * scale;
                let first = ((center - support + 0.5) as i64).max(0) as usize;
                let end = ((center + support + 0.5) as usize).min(input);
                let raw: Vec<f64> = (first..end)
                    .map(|j| {
                        let x = ((j as f64 - center + 0.5) * inverse).abs();
                        if x < 1.0 { 1.0 - x } else { 0.0 }
                    })
                    .collect();
                let total: f64 = raw.iter().sum();
                let fixed = raw
                    .iter()
                    .map(|w| {
                        let w = if total != 0.0 { w / total } else { *w };
                        (0.5 + w * (1 << PRECISION_BITS) as f64) as i32
                    })
                    .collect();
                (first, fixed)
            })
            .collect();
        Self(taps)
    }

    /// The input samples the taps read: from the first one's start to the last one's end.
    fn span(&self) -> std::ops::Range<usize> {
        let start = self.0.first().map_or(0, |t| t.0);
        let end = self.0.last().map_or(0, |(first, w)| first + w.len());
        start..end
    }
}

/// The resized length of a side `this` when the shorter side `short` becomes `resize_to`, and
/// the offset of a centred crop of `side` in it, as torchvision computes them:
/// `int(resize_to * this / short)`, and `int(round((resized - side) / 2))` with Python's
/// rounding of halves to even.
fn resized_and_offset(short: usize, this: usize, resize_to: usize, side: usize) -> (usize, usize) {
    let resized = resize_to * this / short;
    let excess = resized - side;
    let half = excess / 2;
    let offset = match excess % 2 == 1 && half % 2 == 1 {
        true => half + 1,
        false => half,
    };
    (resized, offset)
}

/// Resizes `width x height` planes to `side x side`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resize {
    width: usize,
    height: usize,
    side: usize,
    horizontal: Taps,
    vertical: Taps,
}

impl Resize {
    /// The resize of `width x height` planes to `side x side` (shorter side, then centre crop).
    pub fn new(width: usize, height: usize, side: usize) -> Self {
        Self::cropped(width, height, side, side)
    }

    /// The shorter side resized to `resize_to`, then the centred `side x side` kept
    /// (torchvision's `Resize(resize_to)` then `CenterCrop(side)`; `resize_to >= side`).
    pub fn cropped(width: usize, height: usize, resize_to: usize, side: usize) -> Self {
        let short = width.min(height);
        let axis = |this: usize| {
            let (resized, offset) = resized_and_offset(short, this, resize_to, side);
            Taps::new(this, resized, offset..offset + side)
        };
        Self {
            width,
            height,
            side,
            horizontal: axis(width),
            vertical: axis(height),
        }
    }

    /// The resize of the whole `width x height` plane to `side x side`, each axis scaled on
    /// its own (torchvision's `Resize((side, side))`, which `RandomResizedCrop` ends with).
    pub fn stretch(width: usize, height: usize, side: usize) -> Self {
        Self {
            width,
            height,
            side,
            horizontal: Taps::new(width, side, 0..side),
            vertical: Taps::new(height, side, 0..side),
        }
    }

    /// The output side.
    pub fn side(&self) -> usize {
        self.side
    }

    /// The input size it takes, `(width, height)`.
    pub fn input(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Resizes one plane of `width * height` bytes into `out` (`side * side` values in
    /// `[0, 1]`, scaled as `ToTensor` does).
    pub fn resize_into(&self, pixels: &[u8], out: &mut [f32]) {
        let side = self.side;
        // Horizontal pass over the input rows the vertical taps read, rounded to 8 bits as PIL
        // does between its passes.
        let rows_read = self.vertical.span();
        let mut rows = vec![0i32; rows_read.len() * side];
        for (r, row) in rows.chunks_exact_mut(side).enumerate() {
            let y = rows_read.start + r;
            let src = &pixels[y * self.width..(y + 1) * self.width];
            for (o, (first, weights)) in row.iter_mut().zip(&self.horizontal.0) {
                let sum: i32 = weights
                    .iter()
                    .zip(&src[*first..])
                    .map(|(w, &p)| w * p as i32)
                    .sum();
                *o = clip8(HALF + sum);
            }
        }
        // Vertical pass, then scale to [0, 1] as `ToTensor` does.
        let mut sums = vec![0i32; side];
        for (r, (first, weights)) in self.vertical.0.iter().enumerate() {
            sums.fill(HALF);
            for (k, w) in weights.iter().enumerate() {
                let y = first + k - rows_read.start;
                let src = &rows[y * side..(y + 1) * side];
                sums.iter_mut().zip(src).for_each(|(d, s)| *d += w * s);
            }
            let dst = &mut out[r * side..(r + 1) * side];
            dst.iter_mut()
                .zip(&sums)
                .for_each(|(d, &s)| *d = clip8(s) as f32 / 255.0);
        }
    }
}

/// Half of one in Pillow's fixed point: every sum starts from it, so the shift rounds.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Pillow's `clip8`: a fixed-point sum as a byte, clipped to 0..=255.
fn clip8(sum: i32) -> i32 {
    (sum >> PRECISION_BITS).clamp(0, 255)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIDE: usize = 28;

    fn resize(width: usize, height: usize, side: usize, pixels: &[u8]) -> Vec<f32> {
        let mut out = vec![0.0; side * side];
        Resize::new(width, height, side).resize_into(pixels, &mut out);
        out
    }

    #[test]
    fn identity_at_native_size() {
        let pixels: Vec<u8> = (0..SIDE * SIDE).map(|i| (i * 7 % 256) as u8).collect();
        let out = resize(SIDE, SIDE, SIDE, &pixels);
        let expected: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn constant_images_stay_constant() {
        for (w, h, side) in [(28, 28, 65), (28, 28, 224), (40, 90, 96), (300, 200, 65)] {
            let out = resize(w, h, side, &vec![200; w * h]);
            assert!(out.iter().all(|&v| v == 200.0 / 255.0), "{w}x{h} to {side}");
        }
    }

    #[test]
    fn upsampling_interpolates_between_pixel_centres() {
        // Columns alternate 0 and 255; at 56 px each output centre sits a quarter pixel from an
        // input centre: 0.75 * 0 + 0.25 * 255 = 63.75 -> 64, and the border copies the edge.
        let pixels: Vec<u8> = (0..SIDE * SIDE)
            .map(|i| if i % 2 == 0 { 0 } else { 255 })
            .collect();
        let out = resize(SIDE, SIDE, 56, &pixels);
        let row: Vec<u8> = out[..6].iter().map(|v| (v * 255.0).round() as u8).collect();
        assert_eq!(row, [0, 64, 191, 191, 64, 64]);
    }

    #[test]
    fn the_long_side_is_cropped_around_its_centre() {
        // torchvision: Resize(4) of 8 x 16 gives 4 x 8, CenterCrop(4) keeps rows 2..6.
        let long = |short, long, side| resized_and_offset(short, long, side, side);
        assert_eq!(long(8, 16, 4), (8, 2));
        // Odd excess rounds half to even, as Python's round: 1.5 -> 2, 2.5 -> 2, 0.5 -> 0.
        assert_eq!(long(10, 17, 10), (17, 4)); // excess 7: 3.5 -> 4
        assert_eq!(long(10, 15, 10), (15, 2)); // excess 5: 2.5 -> 2
        assert_eq!(long(10, 13, 10), (13, 2)); // excess 3: 1.5 -> 2
        assert_eq!(long(10, 11, 10), (11, 0)); // excess 1: 0.5 -> 0
        assert_eq!(long(3, 10, 4), (13, 4)); // int(4 * 10 / 3) = 13
        // ImageNet's Resize(256), CenterCrop(224) of a 500 x 375 photo: 341 x 256, then
        // int(round(58.5)) = 58 (half to even) columns and 16 rows left out.
        assert_eq!(resized_and_offset(375, 500, 256, 224), (341, 58));
        assert_eq!(resized_and_offset(375, 375, 256, 224), (256, 16));

        // A tall image whose rows are numbered: the crop keeps the middle rows.
        let (w, h) = (4, 12);
        let pixels: Vec<u8> = (0..w * h).map(|i| (i / w * 10) as u8).collect();
        let out = resize(w, h, 4, &pixels);
        let first_column: Vec<u8> = (0..4).map(|r| (out[r * 4] * 255.0).round() as u8).collect();
        assert_eq!(first_column, [40, 50, 60, 70]);
    }
}
