//! `alexnet infer` and `alexnet eval` on a small run on the synthetic set: images saved as PNG predict like the
//! test-set images they came from, evaluation adds up, and bad inputs get clear errors.

#![cfg(feature = "flex")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use alexnet::data::{FashionMnist, PIXELS, SIDE, Split};
use alexnet_model::AlexNetConfig;
use burn::backend::Flex;
use burn::data::dataset::Dataset;
use burn::module::Module;
use common::{run, stderr, stdout, synthetic_data_dir};

/// A finished 2-epoch run at 65 px, trained once for all tests here.
fn trained_run() -> &'static Path {
    static RUN: OnceLock<common::ProcessDir> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = common::ProcessDir::new("inference-run");
        let data = synthetic_data_dir().to_path_buf();
        let mut args = common::small_run_args(dir.path(), &data);
        for a in [
            "--limit-train",
            "128",
            "--limit-test",
            "64",
            "--batch-size",
            "32",
            "--epochs",
            "2",
            "--lr",
            "0.05",
        ] {
            args.push(a.into());
        }
        let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{}", stderr(&out));
        dir
    })
    .path()
}

fn infer(extra: &[&str]) -> std::process::Output {
    let dir = trained_run().to_str().unwrap().to_string();
    let data = synthetic_data_dir()
        .to_path_buf()
        .to_str()
        .unwrap()
        .to_string();
    let mut args = vec!["infer", "--artifact-dir", &dir, "--data-dir", &data];
    args.extend(extra);
    run(&args)
}

fn infer_json(extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json"];
    args.extend(extra);
    let out = infer(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Saves test image `index` as a grey PNG (inverted if asked) and returns its path.
fn save_test_png(dir: &Path, index: usize, invert: bool) -> PathBuf {
    let test = FashionMnist::load(Split::Test, Some(synthetic_data_dir())).unwrap();
    let mut pixels = test.get(index).unwrap().pixels.to_vec();
    assert_eq!(pixels.len(), PIXELS);
    if invert {
        pixels.iter_mut().for_each(|p| *p = 255 - *p);
    }
    let path = dir.join(format!(
        "test-{index}{}.png",
        if invert { "-inverted" } else { "" }
    ));
    image::GrayImage::from_raw(SIDE as u32, SIDE as u32, pixels)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

#[test]
fn pngs_of_test_images_predict_like_the_test_images() {
    let tmp = tempfile::tempdir().unwrap();
    // Test image 9 of the synthetic set is class 9.
    let plain = save_test_png(tmp.path(), 9, false);
    let inverted = save_test_png(tmp.path(), 9, true);
    let by_index = infer_json(&["--test-index", "9", "--top", "10"]);
    let from_png = infer_json(&["--top", "10", plain.to_str().unwrap()]);
    let from_inverted = infer_json(&["--top", "10", "--invert", inverted.to_str().unwrap()]);
    assert_eq!(by_index[0]["true_label"], "Ankle boot");
    assert_eq!(by_index[0]["top"], from_png[0]["top"]);
    assert_eq!(by_index[0]["top"], from_inverted[0]["top"]);
    let probabilities: Vec<f64> = by_index[0]["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["probability"].as_f64().unwrap())
        .collect();
    assert_eq!(probabilities.len(), 10);
    assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    assert!(
        probabilities.windows(2).all(|w| w[0] >= w[1]),
        "sorted: {probabilities:?}"
    );
}

#[test]
fn resized_colour_images_are_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let test = FashionMnist::load(Split::Test, Some(synthetic_data_dir())).unwrap();
    let pixels = test.get(1).unwrap().pixels;
    let big = image::RgbImage::from_fn(100, 70, |x, y| {
        let (sx, sy) = ((x * 28 / 70).min(27), (y * 28 / 70).min(27));
        let v = if !(15..85).contains(&x) {
            0
        } else {
            pixels[(sy * 28 + sx) as usize]
        };
        image::Rgb([v, v / 2, v])
    });
    let path = tmp.path().join("colour.jpg");
    big.save(&path).unwrap();
    let out = infer(&["--top", "2", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(line.starts_with(&format!("{}: ", path.display())), "{line}");
    assert_eq!(line.matches('%').count(), 2, "{line}");
}

#[test]
fn checkpoints_can_be_chosen() {
    let final_top = infer_json(&["--test-index", "5"])[0]["top"].clone();
    let last_top = infer_json(&["--test-index", "5", "--checkpoint", "last"])[0]["top"].clone();
    let epoch2 = infer_json(&["--test-index", "5", "--checkpoint", "2"])[0]["top"].clone();
    assert_eq!(final_top, last_top, "the final model is the last epoch's");
    assert_eq!(final_top, epoch2);
    let best = infer(&["--test-index", "5", "--checkpoint", "best"]);
    assert!(best.status.success(), "{}", stderr(&best));
    let missing = infer(&["--test-index", "5", "--checkpoint", "9"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no checkpoint of epoch 9 (available: 1, 2)"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn unreadable_files_are_reported_and_the_others_predicted() {
    let tmp = tempfile::tempdir().unwrap();
    let good = save_test_png(tmp.path(), 2, false);
    let text = tmp.path().join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let missing = tmp.path().join("missing.jpg");
    let out = infer(&[
        text.to_str().unwrap(),
        good.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("notes.png is not a readable image"), "{err}");
    assert!(
        err.contains("cannot read") && err.contains("missing.jpg"),
        "{err}"
    );
    assert!(err.contains("2 of 3 inputs could not be read"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        stdout(&out).starts_with(&format!("{}: ", good.display())),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bad_artifacts_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let expect_error = |args: &[&str], expected: &str| {
        let mut all = vec!["infer", "--test-index", "0", "--data-dir"];
        let data = synthetic_data_dir().to_path_buf();
        all.push(data.to_str().unwrap());
        all.extend(args);
        let out = run(&all);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    let run_dir = trained_run().to_str().unwrap();

    expect_error(&["--artifact-dir", "/nonexistent/run"], "does not exist");
    expect_error(
        &["--artifact-dir", tmp.path().to_str().unwrap()],
        "has no config.json",
    );

    // Records of another resize and another number of classes.
    let device = Default::default();
    for (name, config) in [
        ("wide", AlexNetConfig::new().with_image_size(128)),
        (
            "five",
            AlexNetConfig::new().with_image_size(65).with_num_classes(5),
        ),
    ] {
        let path = tmp.path().join(name);
        config
            .init::<Flex>(&device)
            .save_file(&path, &alexnet::run::recorder())
            .unwrap();
        let record = format!("{}.mpk", path.display());
        expect_error(
            &["--artifact-dir", run_dir, "--checkpoint", &record],
            "does not fit the run's config.json",
        );
    }

    // A truncated record.
    let bytes = std::fs::read(Path::new(run_dir).join("model.mpk")).unwrap();
    let cut = tmp.path().join("cut.mpk");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    expect_error(
        &[
            "--artifact-dir",
            run_dir,
            "--checkpoint",
            cut.to_str().unwrap(),
        ],
        "cannot load",
    );

    let out = run(&["infer", "--artifact-dir", run_dir]);
    assert_eq!(out.status.code(), Some(2), "no inputs is a usage error");
    assert!(stderr(&out).contains("<IMAGE>"), "{}", stderr(&out));
}

#[test]
fn eval_reports_loss_accuracy_and_a_consistent_confusion_matrix() {
    let dir = trained_run();
    let data = synthetic_data_dir().to_path_buf();
    let eval = |extra: &[&str]| {
        let (dir, data) = (dir.to_str().unwrap(), data.to_str().unwrap());
        let mut args = vec![
            "eval",
            "--artifact-dir",
            dir,
            "--data-dir",
            data,
            "--limit",
            "100",
        ];
        args.extend(extra);
        run(&args)
    };
    let out = eval(&["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).unwrap()).unwrap();
    assert_eq!(report, saved);
    assert_eq!(report["examples"], 100);
    assert_eq!(report["classes"][9], "Ankle boot");
    let counts: Vec<Vec<u64>> =
        serde_json::from_value(report["confusion"]["counts"].clone()).unwrap();
    assert_eq!(counts.len(), 10);
    assert_eq!(counts.iter().flatten().sum::<u64>(), 100);
    // Row sums are the true label counts of the first 100 test images.
    let test = FashionMnist::load(Split::Test, Some(&data)).unwrap();
    for (class, row) in counts.iter().enumerate() {
        let expected = test.labels()[..100]
            .iter()
            .filter(|&&l| l as usize == class)
            .count() as u64;
        assert_eq!(row.iter().sum::<u64>(), expected, "class {class}");
    }
    let diagonal: u64 = (0..10).map(|c| counts[c][c]).sum();
    assert!((report["accuracy"].as_f64().unwrap() - diagonal as f64 / 100.0).abs() < 1e-12);
    let loss = report["loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0);
    // Precision, F1 and the confused pairs agree with the matrix.
    for (class, row) in report["per_class"].as_array().unwrap().iter().enumerate() {
        let predicted: u64 = counts.iter().map(|r| r[class]).sum();
        let precision = row["precision"].as_f64();
        match predicted {
            0 => assert!(precision.is_none()),
            n => {
                assert!((precision.unwrap() - counts[class][class] as f64 / n as f64).abs() < 1e-12)
            }
        }
    }
    let pairs = report["most_confused"].as_array().unwrap();
    assert!(pairs.len() <= 5);
    let largest_off_diagonal = (0..10)
        .flat_map(|t| (0..10).map(move |p| (t, p)))
        .filter(|(t, p)| t != p)
        .map(|(t, p)| counts[t][p])
        .max()
        .unwrap();
    if largest_off_diagonal > 0 {
        assert_eq!(pairs[0]["count"], largest_off_diagonal);
    }
    let macro_recall = report["macro_avg"]["recall"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&macro_recall));

    let text = stdout(&eval(&[]));
    assert!(
        text.contains("per class:")
            && text.contains("precision")
            && text.contains("most confused")
            && text.contains("confusion matrix"),
        "{text}"
    );
    assert!(
        text.contains(&format!("accuracy {:.3}", diagonal as f64 / 100.0)),
        "{text}"
    );
}
