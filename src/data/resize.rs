//! Resizing 8-bit image planes as torchvision's `Resize` does on a PIL image, which d2l uses:
//! PIL's bilinear filter (a triangle over pixel centres, widened when shrinking), separable,
//! each pass rounded to 8 bits. A square image is resized to `side x side`; any other is
//! resized so that its shorter side is `side` and centre-cropped to `side x side`
//! (torchvision's `Resize(side)` then `CenterCrop(side)`, the usual evaluation transform).

/// The filter taps of one axis: for each output coordinate, the first input index and the
/// weights from there on.
#[derive(Debug, Clone, PartialEq)]
struct Taps(Vec<(usize, Vec<f32>)>);

impl Taps {
    /// PIL's bilinear taps from `input` to `output` samples, keeping outputs `keep`.
    fn new(input: usize, output: usize, keep: std::ops::Range<usize>) -> Self {
        let scale = input as f64 / output as f64;
        let support = scale.max(1.0);
        let taps = keep
            .map(|i| {
                let center = (i as f64 + 0.5) * scale;
                let first = ((center - support + 0.5).floor().max(0.0)) as usize;
                let end = ((center + support + 0.5).floor() as usize).min(input);
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
        Self(taps)
    }

    /// The input samples the taps read: from the first one's start to the last one's end.
    fn span(&self) -> std::ops::Range<usize> {
        let start = self.0.first().map_or(0, |t| t.0);
        let end = self.0.last().map_or(0, |(first, w)| first + w.len());
        start..end
    }
}

/// The resized size of the longer side and the offset of the centred crop, as torchvision
/// computes them: `int(side * long / short)`, and `int(round((long - side) / 2))` with Python's
/// rounding of halves to even.
fn resized_long_side(short: usize, long: usize, side: usize) -> (usize, usize) {
    let resized = side * long / short;
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
        let axis = |this: usize, other: usize| {
            if this <= other {
                return Taps::new(this, side, 0..side);
            }
            let (resized, offset) = resized_long_side(other, this, side);
            Taps::new(this, resized, offset..offset + side)
        };
        Self {
            width,
            height,
            side,
            horizontal: axis(width, height),
            vertical: axis(height, width),
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
        let mut rows = vec![0f32; rows_read.len() * side];
        for (r, row) in rows.chunks_exact_mut(side).enumerate() {
            let y = rows_read.start + r;
            let src = &pixels[y * self.width..(y + 1) * self.width];
            for (o, (first, weights)) in row.iter_mut().zip(&self.horizontal.0) {
                let v: f32 = weights
                    .iter()
                    .zip(&src[*first..])
                    .map(|(w, &p)| w * p as f32)
                    .sum();
                *o = round_to_byte(v);
            }
        }
        // Vertical pass, then scale to [0, 1].
        for (r, (first, weights)) in self.vertical.0.iter().enumerate() {
            let dst = &mut out[r * side..(r + 1) * side];
            dst.fill(0.0);
            for (k, w) in weights.iter().enumerate() {
                let y = first + k - rows_read.start;
                let src = &rows[y * side..(y + 1) * side];
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
        assert_eq!(resized_long_side(8, 16, 4), (8, 2));
        // Odd excess rounds half to even, as Python's round: 1.5 -> 2, 2.5 -> 2, 0.5 -> 0.
        assert_eq!(resized_long_side(10, 17, 10), (17, 4)); // excess 7: 3.5 -> 4
        assert_eq!(resized_long_side(10, 15, 10), (15, 2)); // excess 5: 2.5 -> 2
        assert_eq!(resized_long_side(10, 13, 10), (13, 2)); // excess 3: 1.5 -> 2
        assert_eq!(resized_long_side(10, 11, 10), (11, 0)); // excess 1: 0.5 -> 0
        assert_eq!(resized_long_side(3, 10, 4), (13, 4)); // int(4 * 10 / 3) = 13

        // A tall image whose rows are numbered: the crop keeps the middle rows.
        let (w, h) = (4, 12);
        let pixels: Vec<u8> = (0..w * h).map(|i| (i / w * 10) as u8).collect();
        let out = resize(w, h, 4, &pixels);
        let first_column: Vec<u8> = (0..4).map(|r| (out[r * 4] * 255.0).round() as u8).collect();
        assert_eq!(first_column, [40, 50, 60, 70]);
    }
}
