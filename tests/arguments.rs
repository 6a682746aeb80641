//! Unusable flags are refused before any work, with one line naming the flag and the fix.

mod common;

use common::{run, stderr};

fn refused(args: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["train", "--artifact-dir", dir.path().to_str().unwrap()];
    all.extend(args);
    let out = run(&all);
    let err = stderr(&out);
    assert!(!out.status.success(), "{args:?} accepted");
    assert!(err.contains(expected), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !dir.path().join("config.json").exists(),
        "nothing should be written"
    );
}

#[test]
fn zero_counts_are_refused() {
    refused(&["--batch-size", "0"], "--batch-size must be at least 1");
    refused(&["--epochs", "0"], "--epochs must be at least 1");
}

#[test]
fn unusable_learning_rates_are_refused() {
    for lr in ["-0.1", "0", "NaN", "inf"] {
        refused(&["--lr", lr], "is not a usable learning rate");
    }
}

#[test]
fn too_small_resize_is_refused() {
    refused(&["--resize", "64"], "at least 65");
}

#[test]
fn unknown_backend_is_refused() {
    refused(&["--backend", "tpu"], "invalid value 'tpu' for '--backend");
}

#[test]
fn empty_subset_is_refused() {
    let data = common::synthetic_data_dir();
    refused(
        &["--limit-train", "0", "--data-dir", data.to_str().unwrap()],
        "empty after --limit-train 0",
    );
}

#[test]
fn a_backend_not_compiled_in_is_refused_with_the_feature_to_add() {
    let missing = alexnet::backend::BackendKind::ALL
        .into_iter()
        .find(|b| !b.is_compiled());
    let Some(missing) = missing else {
        return; // every backend is compiled into this build: nothing to refuse
    };
    let name = missing.name();
    refused(
        &["--backend", name],
        &format!("backend {name} is not compiled into this binary"),
    );
    refused(&["--backend", name], &format!("--features {name}"));
}
