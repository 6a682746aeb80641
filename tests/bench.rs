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

    let bad = run(&["bench", "--iters", "0"]);
    assert!(!bad.status.success() && stderr(&bad).contains("at least 1"));
}
