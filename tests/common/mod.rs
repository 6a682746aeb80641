//! Helpers shared by the integration tests, which drive the real `alexnet` binary.

#![allow(dead_code)]

#[cfg(feature = "flex")]
pub mod same_weights;
pub mod serve;
pub mod state_dict;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use alexnet::data::{NUM_CLASSES, PIXELS, SIDE, idx};

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

/// Every file under `dir`, in its subfolders too, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            match entry.path().is_dir() {
                true => walk(&entry.path(), files),
                false => files.push(entry.path()),
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    files
}

/// Asserts that a failed command said one `error:` line and no panic; returns the line.
pub fn one_line_error(out: &Output, what: &str) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "{what}: expected a refusal: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{what}: {err}"
    );
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{what}: one error line: {err}");
    errors[0].to_string()
}

/// The real Fashion-MNIST directory (Debian's `dataset-fashion-mnist`, or $FASHION_MNIST_DIR),
/// for the tests that check learning on the real images. When it is missing the test says what
/// it needs and is skipped, except under CI (`CI` set), where it fails.
pub fn real_data() -> Option<PathBuf> {
    let dir = std::env::var_os("FASHION_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/datasets/fashion-mnist"));
    if dir.join("train-images-idx3-ubyte.gz").exists()
        || dir.join("train-images-idx3-ubyte").exists()
    {
        return Some(dir);
    }
    let need = format!(
        "this test needs the real Fashion-MNIST files, missing from {}: run \
         `apt-get install -y dataset-fashion-mnist` (or set FASHION_MNIST_DIR)",
        dir.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{need}");
    eprintln!("skipped: {need}");
    None
}

/// A Python with ONNX, ONNX Runtime, Pillow and tritonclient (reference/test-requirements.txt):
/// $TEST_PYTHON, which .ci/run sets to the virtual environment it makes, else `python3`. When
/// it lacks them the test says what it needs and is skipped, except under CI, where it fails.
pub fn test_python() -> Option<PathBuf> {
    let python = std::env::var_os("TEST_PYTHON").map_or_else(|| "python3".into(), PathBuf::from);
    let probe = Command::new(&python)
        .args([
            "-c",
            "import onnx, onnxruntime, PIL, numpy, tritonclient.grpc",
        ])
        .output();
    if probe.is_ok_and(|out| out.status.success()) {
        return Some(python);
    }
    let need = format!(
        "this test needs {} with reference/test-requirements.txt installed: `python3 -m venv \
         ENV && ENV/bin/pip install -r reference/test-requirements.txt`, then \
         TEST_PYTHON=ENV/bin/python",
        python.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{need}");
    eprintln!("skipped: {need}");
    None
}

/// Whether this process may mount file systems; when not, the caller's test says it is skipped
/// (CI runs the tests as root).
pub fn is_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: {test} mounts a tmpfs, which needs root (CI runs it as root)");
    }
    root
}

/// A folder for what a test binary makes once and keeps in a `static`. Statics are never
/// dropped, so a `TempDir` kept there is left behind (over 1 GB per run of tests/explain.rs).
/// This one lives in Cargo's temporary folder for tests, is named after the process, and the
/// folders that ended processes left under the same name are removed when it is made.
pub struct ProcessDir(PathBuf);

impl ProcessDir {
    pub fn new(name: &str) -> Self {
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let prefix = format!("{name}-");
        for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let file_name = entry.file_name();
            let pid = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|pid| pid.parse::<i32>().ok());
            if pid.is_some_and(|pid| !is_running(pid)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = parent.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

fn is_running(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists; nothing is sent.
    let answer = unsafe { libc::kill(pid, 0) };
    answer == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Training images of the synthetic set: 64 per class.
pub const SYNTHETIC_TRAIN: usize = 640;
/// Test images of the synthetic set: 16 per class.
pub const SYNTHETIC_TEST: usize = 160;

/// A Fashion-MNIST-shaped data directory written with the crate's own IDX encoder: each class
/// is a bright bar at its own place on a dark, noisy background, so a network can learn it
/// in a few steps. Made once per test binary. The end-to-end tests of files, resume, faults
/// and the dashboard use it, so they run without the data package.
pub fn synthetic_data_dir() -> &'static Path {
    static DIR: OnceLock<ProcessDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = ProcessDir::new("synthetic-data");
        for (prefix, count, seed) in [
            ("train", SYNTHETIC_TRAIN, 1u64),
            ("t10k", SYNTHETIC_TEST, 2),
        ] {
            let labels: Vec<u8> = (0..count).map(|i| (i % NUM_CLASSES) as u8).collect();
            let pixels: Vec<u8> = labels
                .iter()
                .enumerate()
                .flat_map(|(i, &label)| synthetic_image(label, seed * 1_000_003 + i as u64))
                .collect();
            let write = |name: &str, bytes: Vec<u8>| {
                std::fs::write(dir.path().join(format!("{prefix}-{name}")), bytes).unwrap()
            };
            write("images-idx3-ubyte", idx::encode_images(&pixels));
            write("labels-idx1-ubyte", idx::encode_labels(&labels));
        }
        dir
    })
    .path()
}

/// One 28x28 image of class `label`: noise below 64, and a bar of 200+ over rows (classes 0-4)
/// or columns (5-9) `5k..5k+3` of the class's index `k` within its half.
fn synthetic_image(label: u8, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let (k, rows) = ((label % 5) as usize, label < 5);
    (0..PIXELS)
        .map(|p| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (state >> 58) as u8; // 0..63
            let (row, col) = (p / SIDE, p % SIDE);
            let along = if rows { row } else { col };
            match (5 * k + 1..5 * k + 4).contains(&along) {
                true => 200 + noise / 2,
                false => noise,
            }
        })
        .collect()
}

/// `train --resize 65` on `data_dir` into `artifact_dir`; callers add the rest.
pub fn small_run_args(artifact_dir: &Path, data_dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["train".into(), "--resize".into(), "65".into()];
    args.extend(["--artifact-dir".into(), artifact_dir.display().to_string()]);
    args.extend(["--data-dir".into(), data_dir.display().to_string()]);
    args
}

/// A tiny run on the synthetic set: 256 training images (8 batches of 32) and 64 test images
/// at 65 px, plus `extra` (whose flags replace those defaults).
pub fn tiny_run_args(artifact_dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = small_run_args(artifact_dir, synthetic_data_dir());
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

/// `train` on the image folder `folder` into `artifact_dir`: 65 px, one epoch of batches of 8,
/// lr 0.05, a small quick run; `extra` flags added.
pub fn folder_run_args(folder: &Path, artifact_dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["train", "--images"].map(String::from).to_vec();
    args.push(folder.display().to_string());
    args.push("--artifact-dir".into());
    args.push(artifact_dir.display().to_string());
    let quick = [
        "--resize",
        "65",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--lr",
        "0.05",
    ];
    args.extend(quick.iter().chain(extra).map(|a| a.to_string()));
    args
}

/// A PNG whose header states a `side` x `side` grey image, with no pixels after it: a
/// decompression bomb's header, refused from it before anything is decoded.
pub fn png_stating(side: u32) -> Vec<u8> {
    grey_png(side, &[])
}

/// A PNG of a `side` x `side` grey image whose compressed pixels are `idat`.
pub fn grey_png(side: u32, idat: &[u8]) -> Vec<u8> {
    let chunk = |kind: &[u8], body: &[u8]| {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(body);
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out.extend_from_slice(&crc.sum().to_be_bytes());
        out
    };
    let mut ihdr = side.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", idat));
    png.extend(chunk(b"IEND", &[]));
    png
}
