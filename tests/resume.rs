//! Crash safety and resume: a training subprocess killed with SIGKILL at several points, then
//! resumed to completion; Ctrl-C; conflicting flags.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{alexnet, run, stderr, stdout, synthetic_data_dir};

const BATCHES_PER_EPOCH: usize = 8; // 256 images, batch 32

/// 3 epochs of the tiny run, unless `extra` names `--epochs`.
fn args(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = common::tiny_run_args(dir, extra);
    if !extra.contains(&"--epochs") {
        args.extend(["--epochs".to_string(), "3".to_string()]);
    }
    args
}

fn spawn(args: &[String]) -> Child {
    alexnet()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn alexnet")
}

/// Polls every millisecond until `ready` holds (then returns true) or `secs` pass.
fn wait_for(secs: u64, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn kill9(child: &mut Child) {
    child.kill().expect("SIGKILL the training");
    child.wait().unwrap();
}

fn lines(path: PathBuf) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

fn partial_records(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("checkpoint"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn killed_runs_resume_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let fresh = args(dir, &[]);
    let resume = args(dir, &["--resume"]);

    // 1. Kill while the first checkpoint is being written (or just after, if the write is too
    //    quick to catch): the half-written record must not be taken for a good one.
    let mut child = spawn(&fresh);
    let model1 = dir.join("checkpoint/model-1.mpk");
    assert!(wait_for(240, || !partial_records(dir).is_empty() || model1.exists()));
    let caught_mid_write = !partial_records(dir).is_empty();
    kill9(&mut child);
    eprintln!("killed during the checkpoint write: {caught_mid_write}");

    // 2. Resume, and kill in the middle of the next epoch.
    let mut child = spawn(&resume);
    assert!(wait_for(240, || {
        (2..=3).any(|e| lines(dir.join(format!("train/epoch-{e}/Loss.log"))) >= 3)
    }));
    kill9(&mut child);
    assert!(
        !dir.join("model.mpk").exists(),
        "no final model before the last epoch"
    );

    // 3. Resume to the end.
    let out = run(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l.starts_with("epoch 3/3: ")), "{text}");
    assert!(
        !text.contains("epoch 1/3"),
        "epoch 1 was complete and must not rerun: {text}"
    );
    for epoch in 1..=3 {
        let train = lines(dir.join(format!("train/epoch-{epoch}/Loss.log")));
        assert_eq!(train, BATCHES_PER_EPOCH, "epoch {epoch}'s train log");
        assert_eq!(
            lines(dir.join(format!("valid/epoch-{epoch}/Loss.log"))),
            2,
            "epoch {epoch}"
        );
    }
    assert!(!dir.join("train/epoch-4").exists());
    assert!(dir.join("checkpoint/model-3.mpk").exists() && dir.join("model.mpk").exists());
    assert!(
        partial_records(dir).is_empty(),
        "{:?}",
        partial_records(dir)
    );

    // 4. Raising --epochs continues the finished run by exactly the new epochs.
    let more = args(dir, &["--resume", "--epochs", "4"]);
    let out = run(&more.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let epochs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("epoch "))
        .map(|l| &l[..10])
        .collect();
    assert_eq!(epochs, ["epoch 4/4:"]);
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(config.contains("\"epochs\": 4"), "{config}");
}

#[test]
fn resume_refuses_conflicting_settings_and_missing_runs() {
    let data = synthetic_data_dir();
    let empty = tempfile::tempdir().unwrap();
    let out = run(&args(empty.path(), &["--resume"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing to resume") && stderr(&out).contains("config.json"),
        "{}",
        stderr(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let config = r#"{"model":{"num_classes":10,"in_channels":1,"image_size":65,"dropout":0.5},
        "epochs":3,"batch_size":32,"lr":0.01,"limit_train":256,"limit_test":64,"seed":0,"num_workers":1}"#;
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    let out = run(&[
        "train",
        "--resume",
        "--resize",
        "96",
        "--artifact-dir",
        dir.path().to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--resize 96 conflicts with the run being resumed (resize 65"),
        "{err}"
    );
}

#[test]
fn sigint_stops_cleanly_and_says_how_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let child = spawn(&args(dir, &[]));
    assert!(wait_for(240, || lines(dir.join("train/epoch-2/Loss.log")) >= 2));
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted during epoch 2"), "{err}");
    assert!(err.contains("checkpoint of epoch 1 is intact"), "{err}");
    assert!(
        err.contains(&format!(
            "alexnet train --resume --artifact-dir {}",
            dir.display()
        )),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!dir.join("model.mpk").exists());
    assert!(dir.join("checkpoint/model-1.mpk").exists());
    assert!(!dir.join("checkpoint/model-2.mpk").exists());
}
