//! torchvision's ImageNet evaluation transform (`Resize(256)`, `CenterCrop(224)`, `ToTensor`,
//! `Normalize`) on real photos, scikit-image's `chelsea` (colour, 451x300) and `camera` (grey,
//! 512x512, made RGB as PIL's `convert("RGB")` does), against what Pillow and NumPy give:
//! fixtures written by `reference/pytorch/imagenet_transform.py`.

use std::path::Path;

use alexnet::data::ImageTransform;
use alexnet_model::Preprocess;

const SIDE: usize = 224;

#[test]
fn the_imagenet_transform_is_torchvisions_on_real_photos() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("imagenet.json")).unwrap())
            .unwrap();
    let transform = ImageTransform::new(SIDE, 3).with_preprocess(Preprocess::Imagenet);
    let area = SIDE * SIDE;
    for name in ["chelsea", "camera"] {
        let mut ours = vec![0.0f32; transform.values()];
        transform
            .load_into(&fixtures.join(format!("{name}.png")), &mut ours)
            .unwrap();
        // Pillow's 8-bit crop, normalised as torchvision does in float32: equal to 1e-5 (the
        // resize itself byte for byte: one byte off would be 0.017 away).
        let crop = image::open(fixtures.join(format!("{name}.imagenet.png")))
            .unwrap()
            .to_rgb8();
        assert_eq!(crop.dimensions(), (SIDE as u32, SIDE as u32));
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

#[test]
fn d2ls_transform_is_unchanged_by_the_imagenet_one() {
    // The same photo read d2l's way: the shorter side straight to 224, values in [0, 1].
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
    let (d2l, imagenet) = (
        ImageTransform::new(SIDE, 3),
        ImageTransform::new(SIDE, 3).with_preprocess(Preprocess::Imagenet),
    );
    let read = |t: &ImageTransform| {
        let mut out = vec![0.0f32; t.values()];
        t.load_into(&fixtures.join("chelsea.png"), &mut out)
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
