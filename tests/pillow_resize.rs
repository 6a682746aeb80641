//! The resize and centre crop against Pillow itself, byte for byte: real photos cut to many
//! aspect ratios and sizes (shrunk and enlarged), read by `ImageTransform` as training, `infer`
//! and `serve` read them, and by Pillow's `convert` + `resize(BILINEAR)` + `crop` as
//! torchvision's `Resize` + `CenterCrop` run them (reference/pillow/resize.py), for d2l's
//! preprocessing (grey and colour) and ImageNet's. JPEG photos are compared after our decode
//! written as PNG: decoders differ (tests/imagenet_transform.rs bounds that), the resize must
//! not.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use alexnet::data::ImageTransform;
use alexnet_model::Preprocess;
use common::test_python;
use image::DynamicImage;

fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos")
}

/// Cuts of four real photos (two PNGs, two JPEGs decoded by us), of many shapes.
fn cuts(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for name in ["chelsea.png", "camera.png", "china.jpg", "flower.jpg"] {
        let photo = image::open(photos().join(name)).unwrap();
        let (w, h) = (photo.width(), photo.height());
        let shapes: [(&str, DynamicImage); 7] = [
            ("whole", photo.clone()),
            ("tall", photo.crop_imm(w / 4, 0, w / 3, h)),
            // Pillow 13 resizes this one vertically first: the height loses more than twice
            // as many pixels as the width.
            ("narrow", photo.crop_imm(w / 2, 0, w / 6, h)),
            ("wide", photo.crop_imm(0, h / 3, w, h / 4)),
            ("square", photo.crop_imm(w / 5, h / 6, 201, 201)),
            ("small", photo.crop_imm(10, 10, 45, 31)),
            ("strip", photo.crop_imm(0, 0, w, 17)),
        ];
        for (shape, cut) in shapes {
            let path = dir.join(format!("{}-{shape}.png", name.replace('.', "-")));
            cut.save(&path).unwrap();
            files.push(path);
        }
    }
    files
}

/// One comparison: a file read at `side` px with `channels` and `preprocess`.
struct Job {
    image: PathBuf,
    channels: usize,
    preprocess: Preprocess,
    side: usize,
    out: PathBuf,
}

/// Our bytes for `job`: the transform's values back in 0..=255 (ImageNet's normalisation
/// undone, which rounds back to the byte exactly).
fn ours(job: &Job) -> Vec<u8> {
    let transform = ImageTransform::new(job.side, job.channels).with_preprocess(job.preprocess);
    let mut values = vec![0.0; transform.values()];
    transform.load_into(&job.image, &mut values).unwrap();
    let area = job.side * job.side;
    let mut bytes = vec![0u8; values.len()];
    for (c, plane) in values.chunks_exact(area).enumerate() {
        let (mean, std) = job
            .preprocess
            .mean_std(c, job.channels)
            .unwrap_or((0.0, 1.0));
        for (i, v) in plane.iter().enumerate() {
            // Pillow's image is interleaved: pixel i, channel c.
            bytes[i * job.channels + c] = ((v * std + mean) * 255.0).round() as u8;
        }
    }
    bytes
}

#[test]
fn the_resize_and_crop_are_pillows_byte_for_byte() {
    let Some(python) = test_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let settings = [
        (1, Preprocess::D2l, 65),
        (1, Preprocess::D2l, 224),
        (3, Preprocess::D2l, 96),
        (3, Preprocess::Imagenet, 224),
        (3, Preprocess::Imagenet, 127),
    ];
    let jobs: Vec<Job> = cuts(dir.path())
        .into_iter()
        .flat_map(|image| {
            let dir = dir.path().to_path_buf();
            settings.map(move |(channels, preprocess, side)| {
                let stem = image.file_stem().unwrap().to_string_lossy().into_owned();
                Job {
                    out: dir.join(format!("{stem}-{channels}-{preprocess}-{side}.pillow.png")),
                    image: image.clone(),
                    channels,
                    preprocess,
                    side,
                }
            })
        })
        .collect();
    let listed: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| {
            serde_json::json!({
                "image": j.image,
                "mode": if j.channels == 3 { "RGB" } else { "L" },
                "resize_to": j.preprocess.resize_to(j.side),
                "crop": j.side,
                "out": j.out,
            })
        })
        .collect();
    let list = dir.path().join("jobs.json");
    std::fs::write(&list, serde_json::to_string(&listed).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/pillow/resize.py");
    let done = Command::new(&python)
        .arg(&script)
        .arg(&list)
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    for job in &jobs {
        let pillow = image::open(&job.out).unwrap();
        let pillow = match job.channels {
            3 => pillow.to_rgb8().into_raw(),
            _ => pillow.to_luma8().into_raw(),
        };
        let ours = ours(job);
        let differing = ours.iter().zip(&pillow).filter(|(a, b)| a != b).count();
        assert_eq!(
            differing,
            0,
            "{} as {} channel(s), {} at {} px: {differing} of {} bytes differ from Pillow's",
            job.image.display(),
            job.channels,
            job.preprocess,
            job.side,
            ours.len()
        );
    }
    eprintln!("{} crops equal to Pillow's byte for byte", jobs.len());
}
