//! Bad Fashion-MNIST files, driven through the real binary: each gives one clear line naming
//! the file and the fix, a non-zero exit, and no panic.

mod common;

use std::path::Path;

use common::{run, stderr};

const PIXELS: usize = 28 * 28;

fn images(count: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [0x803u32, count, 28, 28] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend((0..count as usize * PIXELS).map(|i| (i % 256) as u8));
    out
}

fn labels(values: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0x801u32.to_be_bytes());
    out.extend_from_slice(&(values.len() as u32).to_be_bytes());
    out.extend_from_slice(values);
    out
}

/// Writes a complete, valid data directory of raw files (4 train, 2 test images).
fn write_valid(dir: &Path) {
    std::fs::write(dir.join("train-images-idx3-ubyte"), images(4)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(&[0, 1, 2, 3])).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images(2)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels(&[4, 5])).unwrap();
}

/// Trains one tiny epoch on `dir` and returns (success, stderr).
fn train_on(dir: &Path) -> (bool, String) {
    let artifacts = dir.join("artifacts");
    let out = run(&[
        "train",
        "--resize",
        "65",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--data-dir",
        dir.to_str().unwrap(),
        "--artifact-dir",
        artifacts.to_str().unwrap(),
    ]);
    (out.status.success(), stderr(&out))
}

fn assert_clear_error(dir: &Path, expected: &[&str]) {
    let (ok, err) = train_on(dir);
    assert!(!ok, "training should fail");
    for part in expected {
        assert!(err.contains(part), "missing {part:?} in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
}

#[test]
fn valid_tiny_files_train() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    let (ok, err) = train_on(dir.path());
    assert!(ok, "{err}");
}

#[test]
fn missing_directory_names_places_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let out = run(&[
        "train",
        "--data-dir",
        missing.to_str().unwrap(),
        "--artifact-dir",
        dir.path().join("a").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("nowhere")
            && err.contains("apt-get install -y dataset-fashion-mnist")
            && err.contains("--data-dir"),
        "{err}"
    );
}

#[test]
fn wrong_magic_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), images(1)).unwrap();
    assert_clear_error(
        dir.path(),
        &["train-labels-idx1-ubyte", "magic number 0x00000803"],
    );
}

#[test]
fn truncated_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    let full = images(2);
    std::fs::write(
        dir.path().join("t10k-images-idx3-ubyte"),
        &full[..full.len() - 100],
    )
    .unwrap();
    assert_clear_error(dir.path(), &["t10k-images-idx3-ubyte", "truncated"]);
}

#[test]
fn count_mismatch_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        labels(&[0, 1, 2]),
    )
    .unwrap();
    assert_clear_error(dir.path(), &["4 images", "3 labels"]);
}

#[test]
fn label_out_of_range_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        labels(&[0, 1, 12, 3]),
    )
    .unwrap();
    assert_clear_error(
        dir.path(),
        &["train-labels-idx1-ubyte", "label 12 at index 2"],
    );
}

#[test]
fn not_gzip_where_gz_expected_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    std::fs::write(
        dir.path().join("t10k-labels-idx1-ubyte.gz"),
        labels(&[4, 5]),
    )
    .unwrap();
    assert_clear_error(dir.path(), &["t10k-labels-idx1-ubyte.gz", "gzip"]);
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    assert_clear_error(
        dir.path(),
        &["t10k-images-idx3-ubyte but not t10k-labels-idx1-ubyte[.gz]"],
    );
}

#[test]
fn wrong_dimensions_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    let mut bytes = images(2);
    bytes[8..12].copy_from_slice(&14u32.to_be_bytes());
    bytes[12..16].copy_from_slice(&56u32.to_be_bytes());
    std::fs::write(dir.path().join("t10k-images-idx3-ubyte"), bytes).unwrap();
    assert_clear_error(
        dir.path(),
        &["t10k-images-idx3-ubyte holds 14x56 images, expected 28x28"],
    );
}

#[test]
fn truncated_gzip_is_named() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    write_valid(dir.path());
    std::fs::remove_file(dir.path().join("train-images-idx3-ubyte")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&images(4)).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte.gz"),
        &gz[..gz.len() / 2],
    )
    .unwrap();
    assert_clear_error(
        dir.path(),
        &["train-images-idx3-ubyte.gz", "not valid gzip"],
    );
}
