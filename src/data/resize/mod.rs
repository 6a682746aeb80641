//! Resizing 8-bit image planes as torchvision's `Resize` does on a PIL image, which d2l uses:
//! PIL's bilinear filter (a triangle over pixel centres, widened when shrinking), separable,
//! each pass in Pillow's own fixed-point arithmetic (`Resample.c`: coefficients with 22
//! fractional bits, sums rounded by adding half, clipped to a byte) and in Pillow 13's order
//! of the passes, so that every byte is Pillow's. A square image is resized to `side x side`;
//! any other is resized so that its shorter side is `side` and centre-cropped to `side x side`
//! (torchvision's `Resize(side)` then `CenterCrop(side)`, the usual evaluation transform).
//! ImageNet's evaluation transform resizes the shorter side to more than it keeps
//! (`Resize(256)`, `CenterCrop(224)`): [`Resize::cropped`].

mod passes;

use passes::Lanes;

/// Fractional bits of Pillow's fixed-point coefficients for 8-bit images (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's bilinear windows from `input` to `output` samples, keeping outputs `keep`: each
/// output's first input index and weights, computed in the order and precision of Pillow's
/// `precompute_coeffs` and `normalize_coeffs_8bpc`.
fn pillow_windows(
    input: usize,
    output: usize,
    keep: std::ops::Range<usize>,
) -> Vec<(usize, Vec<i32>)> {
    let scale = input as f64 / output as f64;
    let support = scale.max(1.0);
    let inverse = 1.0 / support;
    keep.map(|i| {
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
    .collect()
}

/// The filter taps of one axis: for each output coordinate, the first input index and `len`
/// weights from there on, in Pillow's fixed point. Every output has the same number of taps
/// (zero weights pad the shorter windows, which adds nothing to a sum), so that the passes
/// run over fixed-length windows and the compiler can unroll and vectorise them.
#[derive(Debug, Clone, PartialEq)]
struct Taps {
    starts: Vec<usize>,
    weights: Vec<i32>,
    len: usize,
}

impl Taps {
    /// PIL's bilinear taps from `input` to `output` samples, keeping outputs `keep`.
    fn new(input: usize, output: usize, keep: std::ops::Range<usize>) -> Self {
        Self::padded(input, pillow_windows(input, output, keep))
    }

    /// The windows at one length, the longest's: a window that would run past the input's end
    /// starts earlier instead, its weights shifted behind zeros.
    fn padded(input: usize, windows: Vec<(usize, Vec<i32>)>) -> Self {
        let len = windows.iter().map(|(_, w)| w.len()).max().unwrap_or(0);
        let mut starts = Vec::with_capacity(windows.len());
        let mut weights = vec![0; windows.len() * len];
        for ((first, window), row) in windows.iter().zip(weights.chunks_exact_mut(len.max(1))) {
            let start = (*first).min(input - len);
            let shift = first - start;
            row[shift..shift + window.len()].copy_from_slice(window);
            starts.push(start);
        }
        Self {
            starts,
            weights,
            len,
        }
    }

    /// Each output's first input index and its weights.
    fn windows(&self) -> impl Iterator<Item = (usize, &[i32])> {
        self.starts
            .iter()
            .copied()
            .zip(self.weights.chunks_exact(self.len.max(1)))
    }

    /// The input samples the taps read: from the first one's start to the last one's end.
    fn span(&self) -> std::ops::Range<usize> {
        let start = self.starts.iter().copied().min().unwrap_or(0);
        let end = self.starts.iter().map(|s| s + self.len).max().unwrap_or(0);
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
    /// Pillow 13's order of the passes for this resize (see [`vertical_first`]).
    vertical_first: bool,
}

/// Whether Pillow runs the vertical pass first when it resizes `from` to `to` (`(width,
/// height)`, the whole resize before any crop): since Pillow 13 (its pull request 9549), when
/// the height loses more than twice as many pixels as the width. Earlier Pillows always run the
/// horizontal pass first. The order moves some pixels by a level, because the first pass's
/// result is rounded to bytes.
fn vertical_first(from: (usize, usize), to: (usize, usize)) -> bool {
    let lost = |from: usize, to: usize| from as i64 - to as i64;
    let (width_lost, height_lost) = (lost(from.0, to.0), lost(from.1, to.1));
    height_lost > 0 && height_lost > 2 * width_lost
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
            (Taps::new(this, resized, offset..offset + side), resized)
        };
        let ((horizontal, resized_width), (vertical, resized_height)) = (axis(width), axis(height));
        Self {
            width,
            height,
            side,
            horizontal,
            vertical,
            vertical_first: vertical_first((width, height), (resized_width, resized_height)),
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
            vertical_first: vertical_first((width, height), (side, side)),
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
        self.resize_interleaved(pixels, 1, out);
    }

    /// Resizes an image of `channels` interleaved channels (`width * height * channels` bytes,
    /// as decoders give RGB) into `channels` planes of `side * side` values in `out`, channel
    /// after channel, without splitting the channels first.
    ///
    /// # Panics
    /// If `channels` is not 1 or 3.
    pub fn resize_interleaved(&self, pixels: &[u8], channels: usize, out: &mut [f32]) {
        self.resize_with(Lanes::best(), pixels, channels, out);
    }

    /// [`Resize::resize_interleaved`] on the passes compiled for `lanes`.
    fn resize_with(&self, lanes: Lanes, pixels: &[u8], channels: usize, out: &mut [f32]) {
        assert!(
            channels == 1 || channels == 3,
            "1 or 3 channels, not {channels}"
        );
        passes::run(lanes, self, pixels, channels, out);
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

    /// Pillow's two passes written the plain way, one tap list per output and one plane at a
    /// time, in Pillow 13's order: what the padded, interleaved passes must equal byte for byte.
    fn plain_resize(
        (width, height): (usize, usize),
        (resize_to, side): (usize, usize),
        plane: &[u8],
    ) -> Vec<u8> {
        let short = width.min(height);
        let axis = |this: usize| {
            let (resized, offset) = resized_and_offset(short, this, resize_to, side);
            (
                pillow_windows(this, resized, offset..offset + side),
                resized,
            )
        };
        let ((horizontal, w), (vertical, h)) = (axis(width), axis(height));
        // One output of a window over `len` samples, sample `i` read by `at(i)`.
        let filter = |(first, w): &(usize, Vec<i32>), at: &dyn Fn(usize) -> u8| {
            let sum: i32 = w
                .iter()
                .enumerate()
                .map(|(k, w)| w * at(first + k) as i32)
                .sum();
            clip8(HALF + sum) as u8
        };
        let pixel = |x: usize, y: usize| plane[y * width + x];
        let mut out = Vec::with_capacity(side * side);
        if vertical_first((width, height), (w, h)) {
            let mid: Vec<Vec<u8>> = vertical
                .iter()
                .map(|window| {
                    (0..width)
                        .map(|x| filter(window, &|y| pixel(x, y)))
                        .collect()
                })
                .collect();
            for row in &mid {
                out.extend(horizontal.iter().map(|window| filter(window, &|x| row[x])));
            }
        } else {
            let mid: Vec<Vec<u8>> = (0..height)
                .map(|y| {
                    horizontal
                        .iter()
                        .map(|window| filter(window, &|x| pixel(x, y)))
                        .collect()
                })
                .collect();
            for window in &vertical {
                out.extend((0..side).map(|x| filter(window, &|y| mid[y][x])));
            }
        }
        out
    }

    #[test]
    fn interleaved_channels_resize_as_each_plane_alone_does() {
        let mut state = 7u64;
        let mut byte = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        };
        let sizes = [
            (500, 375, 298, 224),
            (375, 500, 256, 224),
            (28, 28, 65, 65),
            (31, 90, 40, 32),
            (4000, 30, 28, 28),
            (224, 224, 224, 224),
            (97, 13, 13, 13),
        ];
        for (width, height, resize_to, side) in sizes {
            let rgb: Vec<u8> = (0..width * height * 3).map(|_| byte()).collect();
            let resize = Resize::cropped(width, height, resize_to, side);
            let mut out = vec![0.0; 3 * side * side];
            resize.resize_interleaved(&rgb, 3, &mut out);
            for (c, plane_out) in out.chunks_exact(side * side).enumerate() {
                let plane: Vec<u8> = rgb.iter().skip(c).step_by(3).copied().collect();
                let want = plain_resize((width, height), (resize_to, side), &plane);
                let got: Vec<u8> = plane_out
                    .iter()
                    .map(|v| (v * 255.0).round() as u8)
                    .collect();
                assert_eq!(
                    got, want,
                    "{width}x{height} to {resize_to}/{side}, channel {c}"
                );
                let mut alone = vec![0.0; side * side];
                resize.resize_into(&plane, &mut alone);
                assert_eq!(alone, plane_out, "{width}x{height}, plane {c} alone");
            }
        }
    }

    #[test]
    fn every_instruction_set_resizes_as_pillow_written_plainly() {
        let mut state = 11u64;
        let mut next = |below: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % below
        };
        let sets: Vec<Lanes> = Lanes::ALL.into_iter().filter(|l| l.detected()).collect();
        let mut shapes = vec![
            (500, 375, 256, 224),
            (170, 512, 65, 65),
            (2, 9, 5, 5),
            (6, 6, 2, 2),
            (17, 40, 3, 1),
        ];
        shapes.extend((0..40).map(|_| {
            let (width, height) = (1 + next(700), 1 + next(700));
            let side = 1 + next(300);
            (width, height, side + next(40), side)
        }));
        for (width, height, resize_to, side) in shapes {
            for channels in [1, 3] {
                let pixels: Vec<u8> = (0..width * height * channels)
                    .map(|_| next(256) as u8)
                    .collect();
                let want: Vec<f32> = (0..channels)
                    .flat_map(|c| {
                        let plane: Vec<u8> =
                            pixels.iter().skip(c).step_by(channels).copied().collect();
                        plain_resize((width, height), (resize_to, side), &plane)
                    })
                    .map(|b| b as f32 / 255.0)
                    .collect();
                let resize = Resize::cropped(width, height, resize_to, side);
                for &lanes in &sets {
                    let mut got = vec![f32::NAN; want.len()];
                    resize.resize_with(lanes, &pixels, channels, &mut got);
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "{lanes:?}: {width}x{height}x{channels} to {resize_to}/{side}"
                    );
                }
            }
        }
    }

    #[test]
    fn pillow_13_resizes_vertically_first_when_the_height_loses_twice_the_width() {
        assert!(
            vertical_first((170, 512), (65, 195)),
            "loses 317 rows, 105 columns"
        );
        assert!(
            !vertical_first((150, 300), (65, 130)),
            "170 is not more than 2 x 85"
        );
        assert!(!vertical_first((500, 375), (298, 224)));
        assert!(
            !vertical_first((375, 500), (224, 298)),
            "202 rows, 151 columns"
        );
        assert!(!vertical_first((28, 28), (224, 224)), "enlarged");
        assert!(vertical_first((4000, 30), (4000, 28)), "no column lost");
        assert!(Resize::cropped(170, 512, 65, 65).vertical_first);
        assert!(Resize::stretch(100, 900, 224).vertical_first);
        assert!(!Resize::cropped(512, 170, 65, 65).vertical_first);
    }

    #[test]
    fn values_are_the_bytes_divided_by_255() {
        let pixels: Vec<u8> = (0..=255).collect();
        let mut out = vec![0.0; 256];
        Resize::stretch(16, 16, 16).resize_into(&pixels, &mut out);
        for (b, v) in out.iter().enumerate() {
            assert_eq!(v.to_bits(), (b as f32 / 255.0).to_bits());
        }
    }

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
