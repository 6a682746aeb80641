//! wgpu on a machine without a GPU: Mesa's software Vulkan driver (lavapipe, Debian's
//! `mesa-vulkan-drivers`) gives a CPU adapter, selected with `--device cpu`. Built with the
//! `wgpu` feature (CI: `--features ndarray,wgpu`).

#![cfg(all(feature = "wgpu", feature = "flex"))]

mod common;

use common::{run, stderr, stdout, synthetic_data_dir};

#[test]
fn backends_lists_the_software_vulkan_adapter() {
    let out = run(&["backends", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let wgpu = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "wgpu")
        .expect("wgpu listed");
    let cpu = wgpu["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["selector"] == "cpu");
    assert!(
        cpu.is_some(),
        "no CPU adapter: apt-get install mesa-vulkan-drivers\n{wgpu}"
    );
    let text = stdout(&run(&["backends"]));
    assert!(
        text.contains("wgpu:") && text.contains("--device cpu"),
        "{text}"
    );
}

#[test]
fn training_and_inference_run_on_lavapipe_and_agree_with_flex() {
    let tmp = tempfile::tempdir().unwrap();
    // lavapipe compiles every kernel on the CPU: keep the run tiny (one step, 32 test images).
    let args = common::tiny_run_args(
        tmp.path(),
        &[
            "--epochs",
            "1",
            "--limit-train",
            "32",
            "--limit-test",
            "32",
            "--backend",
            "wgpu",
            "--device",
            "cpu",
        ],
    );
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("epoch 1/1:") && text.contains("examples/sec on wgpu"),
        "{text}"
    );

    let data = synthetic_data_dir();
    let infer = |backend: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "infer",
            "--artifact-dir",
            tmp.path().to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--test-index",
            "0,1,2,3",
            "--top",
            "10",
            "--json",
        ];
        args.extend(backend);
        let out = run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let (gpu, cpu) = (
        infer(&["--backend", "wgpu", "--device", "cpu"]),
        infer(&["--backend", "flex"]),
    );
    let mut worst = 0.0f64;
    for i in 0..4 {
        assert_eq!(
            gpu[i]["top"][0]["class"], cpu[i]["top"][0]["class"],
            "image {i}"
        );
        for k in 0..10 {
            let p = |v: &serde_json::Value| v[i]["top"][k]["probability"].as_f64().unwrap();
            worst = worst.max((p(&gpu) - p(&cpu)).abs());
        }
    }
    eprintln!("wgpu (lavapipe) vs flex: max probability difference {worst:e}");
    assert!(worst < 1e-4, "{worst}");
}
