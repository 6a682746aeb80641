//! torchvision's ImageNet evaluation transform (`Resize(256)`, `CenterCrop(224)`, `ToTensor`,
//! `Normalize`) on real photos, scikit-image's `chelsea` (colour, 451x300) and `camera` (grey,
//! 512x512, made RGB as PIL's `convert("RGB")` does), against what Pillow and NumPy give:
//! fixtures written by `reference/pytorch/imagenet_transform.py`. On JPEG photos (scikit-learn's
//! `china` and `flower`, and `camera` saved as a grey JPEG by Pillow), where our decoder is the
//! image crate's and PIL's is libjpeg, the difference is measured and bounded.

use std::path::Path;

use alexnet::data::ImageTransform;
use alexnet_model::Preprocess;

const SIDE: usize = 224;

fn photos() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos")
}

/// `photo` read by our ImageNet transform, and Pillow's 8-bit 224x224 crop of it (the fixture).
fn ours_and_pils_crop(photo: &str) -> (Vec<f32>, image::RgbImage) {
    let transform = ImageTransform::new(SIDE, 3).with_preprocess(Preprocess::Imagenet);
    let mut ours = vec![0.0f32; transform.values()];
    transform
        .load_into(&photos().join(photo), &mut ours)
        .unwrap();
    let crop = image::open(photos().join(format!("{photo}.imagenet.png")))
        .unwrap()
        .to_rgb8();
    assert_eq!(crop.dimensions(), (SIDE as u32, SIDE as u32));
    (ours, crop)
}

#[test]
fn the_imagenet_transform_is_torchvisions_on_real_photos() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(photos().join("imagenet.json")).unwrap())
            .unwrap();
    let area = SIDE * SIDE;
    for name in ["chelsea", "camera"] {
        // Pillow's 8-bit crop, normalised as torchvision does in float32: equal to 1e-5 (the
        // resize itself byte for byte: one byte off would be 0.017 away).
        let (ours, crop) = ours_and_pils_crop(&format!("{name}.png"));
        let mut worst = 0.0f32;
        for (c, (mean, std)) in Preprocess::IMAGENET_MEAN_STD.into_iter().enumerate() {
            for i in 0..area {
                let byte = crop.as_raw()[3 * i + c];
                let want = (byte as f32 / 255.0 - mean) / std;
                worst = worst.max((ours[c * area + i] - want).abs());
            }
        }
        assert!(worst <= 1e-5, "{name}: {worst}");
        // NumPy's own normalised values: the first and last 8 of each channel, and the sums.
        let reference = &expected[format!("{name}.png")];
        for c in 0..3 {
            let plane = &ours[c * area..(c + 1) * area];
            let close = |values: &serde_json::Value, ours: &[f32]| {
                for (want, got) in values.as_array().unwrap().iter().zip(ours) {
                    let want = want.as_f64().unwrap() as f32;
                    assert!(
                        (want - got).abs() <= 1e-5,
                        "{name} channel {c}: {got} vs {want}"
                    );
                }
            };
            close(&reference["head"][c], &plane[..8]);
            close(&reference["tail"][c], &plane[area - 8..]);
            let sum: f64 = plane.iter().map(|&v| v as f64).sum();
            let want = reference["sum"][c].as_f64().unwrap();
            assert!(
                (sum - want).abs() <= 1e-5 * area as f64,
                "{name}: {sum} vs {want}"
            );
        }
    }
}

/// The largest difference between our decode and PIL's libjpeg seen on the fixtures' JPEGs,
/// after the resize to 256 and the crop (1.4% of the values differ, by at most 2 levels): the
/// IDCT and the chroma upsampling round differently.
const JPEG_MAX_LEVELS: u8 = 2;
/// ... and on average, in 8-bit levels per value.
const JPEG_MEAN_LEVELS: f64 = 0.05;

#[test]
fn jpeg_photos_are_within_a_few_levels_of_pils_decode() {
    let area = SIDE * SIDE;
    for name in ["china", "flower", "camera"] {
        let (ours, pil) = ours_and_pils_crop(&format!("{name}.jpg"));
        let (mut worst, mut sum, mut differing) = (0u8, 0u64, 0usize);
        for (c, (mean, std)) in Preprocess::IMAGENET_MEAN_STD.into_iter().enumerate() {
            for i in 0..area {
                let byte = ((ours[c * area + i] * std + mean) * 255.0).round() as u8;
                let diff = byte.abs_diff(pil.as_raw()[3 * i + c]);
                worst = worst.max(diff);
                sum += u64::from(diff);
                differing += usize::from(diff != 0);
            }
        }
        let mean = sum as f64 / (3 * area) as f64;
        eprintln!(
            "{name}.jpg: {:.1}% of values differ from PIL's, by {mean:.3} levels on average, \
             at most {worst}",
            100.0 * differing as f64 / (3 * area) as f64
        );
        assert!(worst <= JPEG_MAX_LEVELS, "{name}: {worst} levels");
        assert!(mean <= JPEG_MEAN_LEVELS, "{name}: {mean} levels on average");
    }
}

#[test]
fn d2ls_transform_is_unchanged_by_the_imagenet_one() {
    // The same photo read d2l's way: the shorter side straight to 224, values in [0, 1].
    let (d2l, imagenet) = (
        ImageTransform::new(SIDE, 3),
        ImageTransform::new(SIDE, 3).with_preprocess(Preprocess::Imagenet),
    );
    let read = |t: &ImageTransform| {
        let mut out = vec![0.0f32; t.values()];
        t.load_into(&photos().join("chelsea.png"), &mut out)
            .unwrap();
        out
    };
    let (plain, normalised) = (read(&d2l), read(&imagenet));
    assert!(plain.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(
        normalised.iter().any(|v| *v < 0.0),
        "ImageNet's values are centred"
    );
    assert_ne!(plain, normalised);
}
