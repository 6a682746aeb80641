//! `alexnet bench` runs and reports every figure (no timing is asserted: that is the
//! command's job, not a test's).

mod common;

use common::{run, stderr, stdout};

#[test]
fn bench_reports_all_three_throughputs() {
    let out = run(&[
        "bench",
        "--resize",
        "65",
        "--batch",
        "4",
        "--infer-batch",
        "4",
        "--iters",
        "2",
        "--warmup",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for part in ["data_pipeline", "train_step", "inference"] {
        let rate = report[part]["images_per_sec"].as_f64().unwrap();
        assert!(rate.is_finite() && rate > 0.0, "{part}: {rate}");
    }
    let gflop = report["forward_gflop_per_image"].as_f64().unwrap();
    assert!(gflop > 0.0);
    let train = &report["train_step"];
    let implied = train["gflops"].as_f64().unwrap() / train["images_per_sec"].as_f64().unwrap();
    assert!(
        (implied - 3.0 * gflop).abs() < 1e-9,
        "training counts 3x the forward FLOPs"
    );

    // The CPU model, as /proc/cpuinfo names it, goes with every figure.
    let cpu = report["cpu"].as_str().unwrap();
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        let name = info
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string());
        if let Some(name) = name {
            assert!(cpu.starts_with(&name), "{cpu} vs {name}");
        }
    }

    let bad = run(&["bench", "--iters", "0"]);
    assert!(!bad.status.success() && stderr(&bad).contains("at least 1"));
}

#[test]
fn layer_breakdown_times_every_layer_beside_burns_own() {
    let out = run(&[
        "bench", "--layers", "--resize", "65", "--batch", "4", "--iters", "1", "--warmup", "0",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["layer"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 21);
    assert_eq!(&names[..4], ["Conv2d", "ReLU", "MaxPool2d", "Conv2d"]);
    assert_eq!(names[20], "Linear");
    for row in &rows {
        let layer = row["layer"].as_str().unwrap();
        for time in ["forward_ms", "backward_ms"] {
            let ms = row[time].as_f64().unwrap();
            assert!(ms.is_finite() && ms >= 0.0, "{layer} {time}: {ms}");
        }
        // FLOPs are counted for the layers that multiply, and only for them.
        let counted = row["training_macs"].as_u64().is_some();
        assert_eq!(counted, matches!(layer, "Conv2d" | "Linear"), "{layer}");
        // The default build replaces Burn's convolution, ReLU and pooling on flex: each of
        // those rows carries the stock layer's times too.
        let replaced = matches!(layer, "Conv2d" | "ReLU" | "MaxPool2d");
        assert_eq!(row["stock"].is_object(), replaced, "{layer}");
    }
    // The first convolution at 65 px: 96 x 1 x 11 x 11 weights over a 4 x 96 x 15 x 15 output,
    // counted once forward and once for the weight gradient (the images need none).
    assert_eq!(rows[0]["output"], serde_json::json!([4, 96, 15, 15]));
    assert_eq!(
        rows[0]["training_macs"].as_u64().unwrap(),
        2 * 4 * 96 * 15 * 15 * 121
    );
}

#[test]
fn bench_times_reading_an_image_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("images");
    let data = common::synthetic_data_dir();
    let args = [
        "export-images",
        "--split",
        "test",
        "--out",
        folder.to_str().unwrap(),
    ];
    let out = run(&[&args[..], &["--data-dir", data.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[
        "bench",
        "--images",
        folder.to_str().unwrap(),
        "--resize",
        "65",
        "--batch",
        "16",
        "--iters",
        "2",
        "--warmup",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        report["images"],
        common::SYNTHETIC_TEST,
        "every image, once a pass"
    );
    assert_eq!(report["channels"], 1, "Fashion-MNIST's PNGs are grey");
    assert_eq!(report["pass_seconds"].as_array().unwrap().len(), 2);
    let rate = report["images_per_sec"].as_f64().unwrap();
    assert!(rate.is_finite() && rate > 0.0, "{rate}");
    let missing = run(&["bench", "--images", "/nonexistent/images"]);
    assert!(stderr(&missing).contains("/nonexistent/images does not exist"));
}
