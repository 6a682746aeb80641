//! wgpu on a machine without a GPU: Mesa's software Vulkan driver (lavapipe, Debian's
//! `mesa-vulkan-drivers`) gives a CPU adapter, selected with `--device cpu`. Built with the
//! `wgpu` feature (`.ci/run` runs them with `--features wgpu,cuda,cudnn`). Autotuning
//! benchmarks kernels on the CPU here, so every run asks for the fewest candidates
//! (`--autotune-level minimal`). Without Mesa's driver the tests say they are skipped, except
//! under CI (`CI` set), where they fail.

#![cfg(all(feature = "wgpu", feature = "flex"))]

mod common;

use common::{run, stderr, stdout, synthetic_data_dir};

/// The flags of a wgpu run on lavapipe, with the fewest autotune candidates.
const WGPU_ON_THE_CPU: [&str; 6] = [
    "--backend",
    "wgpu",
    "--device",
    "cpu",
    "--autotune-level",
    "minimal",
];

/// Whether Mesa's software Vulkan driver is installed (its ICD file), else why the tests skip.
fn lavapipe() -> bool {
    let icds = std::fs::read_dir("/usr/share/vulkan/icd.d")
        .into_iter()
        .flatten()
        .flatten();
    if icds
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .any(|name| name.starts_with("lvp_icd"))
    {
        return true;
    }
    let need = "the wgpu tests need Mesa's software Vulkan driver: run `apt-get install -y \
                mesa-vulkan-drivers`";
    assert!(std::env::var_os("CI").is_none(), "{need}");
    eprintln!("skipped: {need}");
    false
}

#[test]
fn backends_lists_the_software_vulkan_adapter() {
    if !lavapipe() {
        return;
    }
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
    if !lavapipe() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // lavapipe compiles every kernel on the CPU: keep the run tiny (one step, 32 test images).
    let kernels = tempfile::tempdir().unwrap();
    let run_flags = [
        "--kernel-cache",
        kernels.path().to_str().unwrap(),
        "--epochs",
        "1",
        "--limit-train",
        "32",
        "--limit-test",
        "32",
    ];
    let args = common::tiny_run_args(tmp.path(), &[&run_flags[..], &WGPU_ON_THE_CPU].concat());
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("epoch 1/1:") && text.contains("examples/sec on wgpu"),
        "{text}"
    );
    // The first minutes on a GPU backend are not silent: each step's kernels, then the first
    // step's time.
    for line in [
        "kernels: compiling and tuning",
        "kernels: train step, batch 32 ready in",
        "kernels: test pass, batch 32 ready in",
        "first training step done",
    ] {
        assert!(text.contains(line), "missing {line:?} in {text}");
    }

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
    let (gpu, cpu) = (infer(&WGPU_ON_THE_CPU), infer(&["--backend", "flex"]));
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

/// `alexnet warmup` at tiny sizes into `cache`: its `--json` report and stderr.
fn warmup(cache: &std::path::Path) -> (serde_json::Value, String) {
    let out = run(&[
        "warmup",
        "--backend",
        "wgpu",
        "--device",
        "cpu",
        "--resize",
        "65",
        "--batch",
        "4",
        "--infer-batch",
        "4",
        "--limit-train",
        "8",
        "--limit-test",
        "4",
        "--autotune-level",
        "minimal",
        "--kernel-cache",
        cache.to_str().unwrap(),
        "--json",
    ]);
    let err = stderr(&out);
    assert!(out.status.success() && !err.contains("panicked"), "{err}");
    (serde_json::from_str(&stdout(&out)).unwrap(), err)
}

fn count(report: &serde_json::Value, field: &str) -> u64 {
    report[field].as_u64().unwrap()
}

/// The kernel cache's contract, without a GPU: a second warm-up tunes nothing, `backends`
/// calls the cache warm, and a damaged cache file is reported in one line and re-tuned.
#[test]
fn a_second_warmup_tunes_nothing_and_a_damaged_cache_is_tuned_again() {
    if !lavapipe() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let (cold, _) = warmup(cache.path());
    let phases: Vec<&str> = cold["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "train step, batch 4",
            "test pass, batch 4",
            "inference, batch 4",
            "inference, batch 1"
        ]
    );
    let tuned = count(&cold, "tuned_keys");
    assert!(tuned > 0, "a cold cache tunes: {cold}");
    assert_eq!(count(&cold, "cached_keys"), tuned);

    let (warm, _) = warmup(cache.path());
    assert_eq!(count(&warm, "tuned_keys"), 0, "{warm}");
    assert_eq!(count(&warm, "cached_keys"), tuned);

    let listing = stdout(&run(&[
        "backends",
        "--kernel-cache",
        cache.path().to_str().unwrap(),
        "--autotune-level",
        "minimal",
    ]));
    assert!(
        listing.contains(&format!("warm ({tuned} tuned kernels)")),
        "{listing}"
    );

    // Overwrite one tuner's file with garbage: its entries are dropped, said once, tuned again.
    let dir = std::path::PathBuf::from(cold["kernel_cache"].as_str().unwrap());
    let file = common::files_under(&dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("conv-forward-tune.json.log"))
        .expect("the conv forward tuner's cache file");
    let entries = std::fs::read_to_string(&file).unwrap().lines().count() as u64;
    std::fs::write(&file, "{\"key\": garbage\n\u{0}\u{1}\n").unwrap();
    let (repaired, err) = warmup(cache.path());
    let notes: Vec<&str> = err.lines().filter(|l| l.contains("damaged")).collect();
    assert_eq!(notes.len(), 1, "one line per damaged file: {err}");
    assert!(notes[0].contains("tuned again"), "{err}");
    assert_eq!(count(&repaired, "tuned_keys"), entries, "{repaired}");
    assert_eq!(count(&repaired, "cached_keys"), tuned);
}
