//! Helpers shared by the integration tests, which drive the real `alexnet` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub fn alexnet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_alexnet"))
}

/// Runs `alexnet` with `args`, stdout not a terminal.
pub fn run(args: &[&str]) -> Output {
    alexnet()
        .args(args)
        .output()
        .expect("the alexnet binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The real Fashion-MNIST directory (Debian's `dataset-fashion-mnist`, or $FASHION_MNIST_DIR).
/// Panics with the fix when it is missing: these tests need the real data.
pub fn real_data_dir() -> PathBuf {
    let dir = std::env::var_os("FASHION_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/datasets/fashion-mnist"));
    assert!(
        dir.join("train-images-idx3-ubyte.gz").exists()
            || dir.join("train-images-idx3-ubyte").exists(),
        "the real Fashion-MNIST files are missing from {}: run `apt-get install -y dataset-fashion-mnist`",
        dir.display()
    );
    dir
}

/// `train --resize 65` on the real data into `artifact_dir`; callers add the rest.
pub fn small_run_args(artifact_dir: &Path, data_dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["train".into(), "--resize".into(), "65".into()];
    args.extend(["--artifact-dir".into(), artifact_dir.display().to_string()]);
    args.extend(["--data-dir".into(), data_dir.display().to_string()]);
    args
}

/// A tiny real-data run: 256 training images (8 batches of 32) and 64 test images at 65 px,
/// plus `extra` (whose flags replace those defaults).
pub fn tiny_run_args(artifact_dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = small_run_args(artifact_dir, &real_data_dir());
    let defaults = [
        ("--limit-train", "256"),
        ("--limit-test", "64"),
        ("--batch-size", "32"),
    ];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}
