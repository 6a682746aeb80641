//! Fine-tuning end to end through the binary, on the synthetic Fashion-MNIST-shaped set: the
//! start from another run, frozen features, the optimizers, early stopping, and augmentation
//! that a resumed run replays exactly and that validation never sees.

mod common;

use std::path::Path;

use common::{run, stderr, stdout, synthetic_data_dir, tiny_run_args};

/// Runs `alexnet train --quiet` with the tiny defaults plus `extra`.
fn attempt(dir: &Path, extra: &[&str]) -> std::process::Output {
    let args = tiny_run_args(dir, &[extra, &["--quiet"]].concat());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

/// [`attempt`], checked to have succeeded; its stdout.
fn train(dir: &Path, extra: &[&str]) -> String {
    let out = attempt(dir, extra);
    assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
    stdout(&out)
}

/// The per-batch training losses of `epoch`, as burn-train logged them.
fn losses(dir: &Path, split: &str, epoch: usize) -> Vec<f64> {
    let path = dir.join(format!("{split}/epoch-{epoch}/Loss.log"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

fn config(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The named tensors of a run's final model, through `alexnet export`.
fn weights(dir: &Path) -> std::collections::HashMap<String, Vec<u8>> {
    let file = dir.join("weights.safetensors");
    let out = run(&[
        "export",
        "--artifact-dir",
        dir.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
        "--overwrite",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&file).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect()
}

#[test]
fn a_start_from_a_run_with_the_same_classes_begins_at_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    train(&source, &["--epochs", "1", "--lr", "0.05"]);
    let data = synthetic_data_dir().to_str().unwrap().to_string();
    let eval = run(&[
        "eval",
        "--artifact-dir",
        source.to_str().unwrap(),
        "--split",
        "train",
        "--limit",
        "64",
        "--json",
        "--data-dir",
        &data,
    ]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let eval: serde_json::Value = serde_json::from_str(&stdout(&eval)).unwrap();
    let expected = eval["loss"].as_f64().unwrap();

    // Without dropout, the first step's loss is the source network's loss on that batch: one
    // batch of the same 64 images eval read.
    let no_dropout = dir.path().join("no-dropout.json");
    std::fs::write(
        &no_dropout,
        r#"{"model": {"dropout": 0.0, "image_size": 65}}"#,
    )
    .unwrap();
    let tuned = dir.path().join("tuned");
    let out = train(
        &tuned,
        &[
            "--config",
            no_dropout.to_str().unwrap(),
            "--init-from",
            source.to_str().unwrap(),
            "--limit-train",
            "64",
            "--batch-size",
            "64",
            "--epochs",
            "1",
        ],
    );
    assert!(out.contains("init: conv1, conv2"), "{out}");
    let first = losses(&tuned, "train", 1)[0];
    assert!(
        (first - expected).abs() < 1e-4,
        "first step {first}, the source's loss {expected}"
    );
    let loaded = config(&tuned)["init"]["loaded"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(loaded.contains("fc3 loaded from"), "{loaded}");
}

/// A folder of the synthetic images with four classes: two of Fashion-MNIST's each.
fn four_class_folder(root: &Path) {
    let exported = root.join("exported");
    let data = synthetic_data_dir().to_str().unwrap().to_string();
    let out = run(&[
        "export-images",
        "--split",
        "train",
        "--out",
        exported.to_str().unwrap(),
        "--limit",
        "320",
        "--data-dir",
        &data,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut classes: Vec<_> = std::fs::read_dir(&exported)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    classes.sort();
    for (i, class) in classes.iter().enumerate() {
        let merged = root.join("folder").join(format!("group{}", i / 3));
        std::fs::create_dir_all(&merged).unwrap();
        for file in std::fs::read_dir(class).unwrap() {
            let file = file.unwrap().path();
            let name = format!("{i}-{}", file.file_name().unwrap().to_str().unwrap());
            std::fs::copy(&file, merged.join(name)).unwrap();
        }
    }
}

#[test]
fn another_class_set_gets_a_new_head_and_frozen_features_stay_as_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    train(&source, &["--epochs", "1", "--lr", "0.05"]);
    four_class_folder(dir.path());
    let tuned = dir.path().join("tuned");
    let folder = dir.path().join("folder");
    let out = train(
        &tuned,
        &[
            "--images",
            folder.to_str().unwrap(),
            "--init-from",
            source.to_str().unwrap(),
            "--init-checkpoint",
            "last",
            "--freeze-features",
            "--head-lr-mult",
            "10",
            "--epochs",
            "2",
            "--lr",
            "0.05",
        ],
    );
    assert!(
        out.contains("fc3 re-initialised (Xavier) for 4 classes"),
        "{out}"
    );
    let (before, after) = (weights(&source), weights(&tuned));
    for layer in ["0", "3", "6", "8", "10"] {
        for part in ["weight", "bias"] {
            let name = format!("{layer}.{part}");
            assert!(before[&name] == after[&name], "{name} changed while frozen");
        }
    }
    assert!(before["14.weight"] != after["14.weight"], "fc1 trains");
    assert_eq!(after["20.weight"].len(), 4 * 4096 * 4, "a 4-class head");
    let report = std::fs::read_to_string(tuned.join("report.md")).unwrap();
    assert!(report.contains("convolutions frozen"), "{report}");
    assert!(report.contains("output layer lr x10"), "{report}");
}

#[test]
fn another_input_size_is_refused_with_the_size_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    train(&source, &["--epochs", "1", "--limit-train", "32"]);
    let mut args = tiny_run_args(
        &dir.path().join("tuned"),
        &["--init-from", source.to_str().unwrap()],
    );
    let at = args.iter().position(|a| a == "--resize").unwrap();
    args[at + 1] = "128".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("trained on 65-pixel images"), "{err}");
    assert!(err.contains("use --resize 65 (any side from"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_start_that_is_neither_a_run_nor_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-run");
    let out = attempt(
        &dir.path().join("tuned"),
        &["--init-from", missing.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("is neither a run directory nor a weights file"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not weights").unwrap();
    let out = attempt(
        &dir.path().join("tuned2"),
        &["--init-from", text.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn each_optimizer_trains_differently_is_saved_and_cannot_change_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for optimizer in ["sgd", "adam", "adamw"] {
        let run_dir = dir.path().join(optimizer);
        let lr = if optimizer == "sgd" { "0.05" } else { "0.0005" };
        train(
            &run_dir,
            &[
                "--epochs",
                "1",
                "--optimizer",
                optimizer,
                "--lr",
                lr,
                "--weight-decay",
                "0.01",
            ],
        );
        assert_eq!(config(&run_dir)["optimizer"]["kind"], optimizer);
        runs.push(losses(&run_dir, "train", 1));
    }
    // The same start and batch: the first loss is before any update.
    assert_eq!(runs[0][0], runs[1][0]);
    assert_ne!(runs[0][1..], runs[1][1..], "adam moves otherwise than sgd");
    assert_ne!(
        runs[1][1..],
        runs[2][1..],
        "adamw decays otherwise than adam"
    );

    let out = attempt(
        &dir.path().join("sgd"),
        &["--resume", "--optimizer", "adam"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--optimizer adam conflicts with the run being resumed (optimizer sgd"),
        "{err}"
    );
    let bad = attempt(
        &dir.path().join("bad"),
        &["--momentum", "0.9", "--optimizer", "adam"],
    );
    let err = stderr(&bad);
    assert!(
        err.contains("--momentum 0.9 applies to --optimizer sgd"),
        "{err}"
    );
}

#[test]
fn early_stopping_stops_on_a_plateau_and_stays_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = dir.path().join("stopped");
    // A rate too small to move any weight: the validation loss is the same every epoch.
    let plateau = [
        "--lr",
        "1e-30",
        "--epochs",
        "5",
        "--early-stop-patience",
        "2",
    ];
    let out = train(&stopped, &plateau);
    assert!(out.contains("stopped early after epoch 3 of 5"), "{out}");
    assert!(out.contains("the final model is epoch 1's"), "{out}");
    assert!(stopped.join("model.mpk").is_file());
    assert!(!stopped.join("train/epoch-4").exists());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stopped.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["early_stop"]["epoch"], 3);
    assert_eq!(report["early_stop"]["best_epoch"], 1);
    assert_eq!(report["finished"], true);
    let md = std::fs::read_to_string(stopped.join("report.md")).unwrap();
    assert!(md.contains("stopped early after epoch 3"), "{md}");

    let resume = |extra: &[&str]| attempt(&stopped, &[&["--resume"], extra].concat());
    let again = resume(&[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("nothing to resume"),
        "{}",
        stdout(&again)
    );
    assert!(!stopped.join("train/epoch-4").exists());
    let more = resume(&["--epochs", "6"]);
    assert!(more.status.success(), "{}", stderr(&more));
    assert!(
        stopped.join("train/epoch-4").exists(),
        "more epochs train on"
    );
}

#[test]
fn a_resumed_augmented_run_sees_the_batches_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let augment = ["--augment", "hflip,crop", "--pad-crop", "4", "--lr", "0.05"];
    let whole = dir.path().join("whole");
    train(&whole, &[&augment[..], &["--epochs", "2"]].concat());
    let split = dir.path().join("split");
    train(&split, &[&augment[..], &["--epochs", "1"]].concat());
    train(&split, &["--resume", "--epochs", "2"]);
    assert_eq!(losses(&whole, "train", 2), losses(&split, "train", 2));
    assert_eq!(losses(&whole, "valid", 2), losses(&split, "valid", 2));

    let plain = dir.path().join("plain");
    train(&plain, &["--epochs", "2", "--lr", "0.05"]);
    assert_ne!(
        losses(&whole, "train", 1),
        losses(&plain, "train", 1),
        "augmented"
    );
}

#[test]
fn validation_images_are_never_augmented() {
    let dir = tempfile::tempdir().unwrap();
    // With weights that cannot move, the validation losses of an augmented run are those of
    // a plain run only if validation reads the images as they are.
    let still = ["--lr", "1e-30", "--epochs", "2"];
    let augmented = dir.path().join("augmented");
    train(
        &augmented,
        &[&still[..], &["--augment", "hflip,crop", "--pad-crop", "8"]].concat(),
    );
    let plain = dir.path().join("plain");
    train(&plain, &still);
    for epoch in 1..=2 {
        assert_eq!(
            losses(&augmented, "valid", epoch),
            losses(&plain, "valid", epoch)
        );
    }
    assert_ne!(losses(&augmented, "train", 1), losses(&plain, "train", 1));
}
