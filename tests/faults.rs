//! Training faults: a loss that turns NaN or infinite, a disk that fills up while a checkpoint is
//! written, an artifact directory that cannot be written. Each ends with one clear line, a
//! non-zero exit, no panic, and the last good checkpoint intact.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{alexnet, run, stderr, stdout};

fn train(dir: &Path, extra: &[&str]) -> Output {
    alexnet()
        .args(common::tiny_run_args(dir, extra))
        .output()
        .unwrap()
}

fn assert_one_clear_line(out: &Output, expected: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "should fail");
    assert_eq!(out.status.code(), Some(1), "{err}");
    for part in expected {
        assert!(err.contains(part), "missing {part:?} in: {err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
}

fn infer_loads(dir: &Path, checkpoint: &str) -> bool {
    let data = common::synthetic_data_dir();
    let out = run(&[
        "infer",
        "--artifact-dir",
        dir.to_str().unwrap(),
        "--checkpoint",
        checkpoint,
        "--data-dir",
        data.to_str().unwrap(),
        "--test-index",
        "0",
    ]);
    out.status.success()
}

#[test]
fn a_non_finite_loss_stops_at_once_and_keeps_the_last_good_checkpoint() {
    // From the first epoch: nothing to keep.
    let tmp = tempfile::tempdir().unwrap();
    let out = train(tmp.path(), &["--epochs", "2", "--lr", "1e6"]);
    assert_one_clear_line(
        &out,
        &[
            "the loss became",
            "at epoch 1, step",
            "--lr 1000000 is probably too high",
            "no checkpoint yet",
        ],
    );
    assert!(
        !stdout(&out).contains("epoch 1/2:"),
        "the bad epoch must not complete"
    );

    // In the second epoch: epoch 1's checkpoint survives and loads. The first epoch trains at a
    // sane rate; the saved config is then edited to an absurd rate, as if it had been given.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(train(dir, &["--epochs", "1"]).status.success());
    let final_after_epoch_1 = std::fs::read(dir.join("model.mpk")).unwrap();
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"lr\": 0.01", "\"lr\": 1000000.0"),
    )
    .unwrap();
    let out = train(dir, &["--resume", "--epochs", "2"]);
    assert_one_clear_line(
        &out,
        &["at epoch 2, step", "the checkpoint of epoch 1 is intact"],
    );
    assert!(!dir.join("checkpoint/model-2.mpk").exists());
    let final_now = std::fs::read(dir.join("model.mpk")).unwrap();
    assert!(
        final_now == final_after_epoch_1,
        "no diverged weights were written"
    );
    assert!(infer_loads(dir, "1"), "epoch 1's checkpoint still loads");
}

/// A tmpfs of `megabytes` mounted on a fresh directory, unmounted on drop (needs root, as CI).
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    /// `None`, the test skipped, when this process is not root.
    fn mount(test: &str, megabytes: usize, read_only: bool) -> Option<SmallDisk> {
        if !common::is_root(test) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut options = format!("size={megabytes}m");
        if read_only {
            options.push_str(",ro");
        }
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Some(SmallDisk(dir))
    }

    fn path(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_while_checkpointing_keeps_the_previous_checkpoint() {
    // At 65 px a model checkpoint is about 86 MB: the first fits in 110 MB, the second does not.
    let Some(disk) = SmallDisk::mount("the full-disk test", 110, false) else {
        return;
    };
    let dir = disk.path().join("run");
    let out = train(&dir, &["--epochs", "3"]);
    assert_one_clear_line(
        &out,
        &[
            "No space left on device",
            "the checkpoint of epoch 1 is intact",
            "--resume",
        ],
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("checkpoint"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "a failed write leaves no partial record"
    );
    assert!(infer_loads(&dir, "1"));

    // With room again (the run copied to a normal disk), the run resumes to its end.
    let roomy = tempfile::tempdir().unwrap();
    let copy = roomy.path().join("run");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&dir)
            .arg(&copy)
            .status()
            .unwrap()
            .success()
    );
    let out = train(&copy, &["--resume"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("epoch 3/3:"), "{}", stdout(&out));
    assert!(copy.join("model.mpk").exists());
}

/// Fills the file system of `dir` until `leave` bytes are free; returns the filler file.
fn fill_disk(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![1u8; 1 << 16];
    loop {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(dir)
            .output()
            .unwrap();
        let avail: u64 = stdout(&out).lines().nth(1).unwrap().trim().parse().unwrap();
        if avail <= leave {
            return filler;
        }
        let n = (avail - leave).min(chunk.len() as u64) as usize;
        if file
            .write_all(&chunk[..n])
            .and_then(|_| file.sync_all())
            .is_err()
        {
            return filler;
        }
    }
}

#[test]
fn a_full_disk_while_logging_keeps_the_last_good_epoch_resumable() {
    // Records are 86 MB each at 65 px; epoch 2 needs room for two checkpoints and the final
    // model written beside the old one. After epoch 1 the disk is filled to two free pages:
    // enough to restart, not for epoch 2's metric logs.
    let Some(disk) = SmallDisk::mount("the full-disk-while-logging test", 400, false) else {
        return;
    };
    let dir = disk.path().join("run");
    let out = train(&dir, &["--epochs", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let filler = fill_disk(&disk.path(), 8192);
    let out = train(&dir, &["--resume", "--epochs", "2"]);
    assert_one_clear_line(
        &out,
        &[
            "cannot write the metric log",
            "No space left on device",
            "the checkpoint of epoch 1 is intact",
            "--resume",
        ],
    );
    let journal = std::fs::read_to_string(dir.join("epochs.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 1, "{journal}");

    std::fs::remove_file(filler).unwrap();
    let out = train(&dir, &["--resume", "--epochs", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("epoch 2/2:"), "{}", stdout(&out));
    let journal = std::fs::read_to_string(dir.join("epochs.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 2, "one line per epoch: {journal}");
    let batches = std::fs::read_to_string(dir.join("train/epoch-2/Loss.log")).unwrap();
    assert_eq!(
        batches.lines().count(),
        8,
        "every batch of epoch 2 logged once"
    );
}

#[test]
fn an_unwritable_artifact_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = train(&file.join("run"), &["--epochs", "1"]);
    assert_one_clear_line(
        &out,
        &[
            "cannot create the artifact directory",
            "a-file/run",
            "writable --artifact-dir",
        ],
    );

    let Some(disk) = SmallDisk::mount("the read-only test", 1, true) else {
        return;
    };
    let out = train(&disk.path().join("run"), &["--epochs", "1"]);
    assert_one_clear_line(
        &out,
        &[
            "cannot create the artifact directory",
            "Read-only file system",
        ],
    );
}
