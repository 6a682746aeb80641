//! The opt-in training options through the binary: optimizer and schedule flags, `--config`
//! and `--print-config`, progress lines, `metrics.csv`, completions. The defaults stay d2l's
//! (tests/train.rs checks that runs repeat exactly).

mod common;

use std::path::Path;

use alexnet::run::{METRICS_CSV_HEADER, RunDir};
use common::{run, stderr, stdout, tiny_run_args};

fn train(dir: &Path, extra: &[&str]) -> std::process::Output {
    let args = tiny_run_args(dir, extra);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn train_ok(dir: &Path, extra: &[&str]) -> String {
    let out = train(dir, extra);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// The one error line of a refused command.
fn refused(out: std::process::Output) -> String {
    assert!(!out.status.success());
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    lines[0].to_string()
}

/// Per-batch training losses of a finished run, in order.
fn batch_losses(dir: &Path) -> Vec<(usize, f64)> {
    RunDir::new(dir)
        .read_history()
        .iter()
        .flat_map(|e| e.train.clone())
        .map(|b| (b.examples, b.loss))
        .collect()
}

/// Images seen until the mean loss of the last four batches drops below 2.0, if it does.
fn images_until_loss_below_2(dir: &Path) -> Option<usize> {
    let batches = batch_losses(dir);
    let mut seen = 0;
    for (i, (examples, _)) in batches.iter().enumerate() {
        seen += examples;
        let window = &batches[i.saturating_sub(3)..=i];
        let mean = window.iter().map(|b| b.1).sum::<f64>() / window.len() as f64;
        if i >= 3 && mean < 2.0 {
            return Some(seen);
        }
    }
    None
}

#[test]
fn momentum_gets_past_the_plateau_sooner_than_plain_sgd() {
    let (plain, momentum) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let common = [
        "--limit-train",
        "640",
        "--epochs",
        "6",
        "--batch-size",
        "16",
        "--lr",
        "0.01",
    ];
    train_ok(plain.path(), &common);
    train_ok(
        momentum.path(),
        &[&common[..], &["--momentum", "0.9"]].concat(),
    );
    let (p, m) = (
        images_until_loss_below_2(plain.path()),
        images_until_loss_below_2(momentum.path()),
    );
    eprintln!("images until loss < 2.0: plain SGD {p:?}, momentum 0.9 {m:?}");
    let m = m.expect("momentum 0.9 gets below 2.0 within 6 epochs of 640 images");
    assert!(p.is_none_or(|p| m < p), "plain {p:?} vs momentum {m}");
}

#[test]
fn each_optimizer_flag_changes_the_run_and_is_saved() {
    let base = ["--limit-train", "128", "--epochs", "1", "--lr", "0.05"];
    let plain = tempfile::tempdir().unwrap();
    train_ok(plain.path(), &base);
    let plain_losses = batch_losses(plain.path());
    let cases: [(&[&str], &str, serde_json::Value); 6] = [
        (
            &["--momentum", "0.5", "--nesterov"],
            "/optimizer/nesterov",
            true.into(),
        ),
        (
            &["--weight-decay", "0.5"],
            "/optimizer/weight_decay",
            0.5.into(),
        ),
        (
            &["--clip-grad-norm", "0.001"],
            "/optimizer/clip_grad_norm",
            0.001.into(),
        ),
        (
            &["--label-smoothing", "0.3"],
            "/label_smoothing",
            0.3.into(),
        ),
        (
            &["--lr-schedule", "cosine"],
            "/optimizer/lr_schedule",
            "cosine".into(),
        ),
        (
            &[
                "--lr-schedule",
                "step",
                "--lr-step-epochs",
                "1",
                "--lr-gamma",
                "0.5",
            ],
            "/optimizer/lr_gamma",
            0.5.into(),
        ),
    ];
    for (flags, field, value) in cases {
        let dir = tempfile::tempdir().unwrap();
        train_ok(dir.path(), &[&base[..], flags].concat());
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config.pointer(field), Some(&value), "{flags:?}");
        // The schedules only move the rate after the first step; the others change the loss
        // from the second batch on.
        if !flags.contains(&"--lr-schedule") {
            assert_ne!(
                batch_losses(dir.path()),
                plain_losses,
                "{flags:?} changes nothing"
            );
        }
    }
}

#[test]
fn bad_option_values_get_one_line_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--momentum", "-0.5"],
            "--momentum -0.5 must lie in [0, 1)",
        ),
        (
            &["--warmup-epochs", "3", "--epochs", "2"],
            "shorter than the run",
        ),
        (
            &["--lr-schedule", "step"],
            "--lr-step-epochs none must be at least 1",
        ),
        (&["--nesterov"], "needs a --momentum"),
        (&["--label-smoothing", "1.5"], "--label-smoothing"),
    ];
    for (flags, expected) in cases {
        let line = refused(train(dir.path(), flags));
        assert!(line.contains(expected), "{flags:?}: {line}");
    }
    let out = train(dir.path(), &["--lr-schedule", "linear"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("possible values: constant, step, cosine"));
    assert!(!dir.path().join("config.json").exists(), "nothing written");
}

#[test]
fn the_schedule_resumes_where_it_stopped_and_changed_options_are_refused() {
    let flags = [
        "--lr-schedule",
        "cosine",
        "--warmup-epochs",
        "1",
        "--lr",
        "0.05",
        "--epochs",
        "3",
    ];
    let straight = tempfile::tempdir().unwrap();
    train_ok(straight.path(), &flags);
    // Interrupted in epoch 2, then resumed from the checkpoint of epoch 1.
    let resumed = tempfile::tempdir().unwrap();
    let args = tiny_run_args(resumed.path(), &flags);
    let child = common::alexnet()
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let loss_log = resumed.path().join("train/epoch-2/Loss.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    while std::fs::read_to_string(&loss_log).map_or(0, |t| t.lines().count()) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "epoch 2 never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    train_ok(resumed.path(), &["--resume"]);

    let csv = |dir: &Path| std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lr = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .map(|l| l.split(',').nth(6).unwrap().to_string())
            .collect()
    };
    let (a, b) = (csv(straight.path()), csv(resumed.path()));
    assert_eq!(
        b.lines().count(),
        4,
        "a header and three epochs survive the resume:\n{b}"
    );
    assert_eq!(lr(&a), lr(&b), "the learning rate continues after --resume");
    let rates: Vec<f64> = lr(&a).iter().map(|v| v.parse().unwrap()).collect();
    assert!(rates[0] > rates[1] && rates[1] > rates[2], "{rates:?}");

    let line = refused(train(
        resumed.path(),
        &["--resume", "--epochs", "4", "--momentum", "0.9"],
    ));
    assert!(line.contains("--momentum 0.9 conflicts"), "{line}");
}

#[test]
fn metrics_csv_has_a_row_per_epoch_matching_the_report() {
    let dir = tempfile::tempdir().unwrap();
    train_ok(dir.path(), &["--epochs", "2"]);
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        Some(lines.next().unwrap()),
        METRICS_CSV_HEADER.lines().next()
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 2);
    for (row, epoch) in rows.iter().zip(report["epochs"].as_array().unwrap()) {
        assert_eq!(row[0], epoch["epoch"].as_f64().unwrap());
        assert!((row[4] - epoch["test_acc"].as_f64().unwrap()).abs() < 1e-12);
        let top3 = epoch["test_top3"].as_f64().unwrap();
        assert!((row[5] - top3).abs() < 1e-12);
        assert!(
            top3 >= row[4] && top3 <= 1.0,
            "top-3 accuracy is at least top-1"
        );
        assert_eq!(row[6], 0.01, "d2l's constant rate");
    }
}

#[test]
fn config_files_and_print_config() {
    let dir = tempfile::tempdir().unwrap();
    let print = |extra: &[&str]| -> serde_json::Value {
        let stdout = train_ok(dir.path(), &[&["--print-config"], extra].concat());
        serde_json::from_str(&stdout).unwrap()
    };
    let resolved = print(&["--momentum", "0.9", "--epochs", "4"]);
    assert_eq!(resolved["optimizer"]["momentum"], 0.9);
    assert_eq!(
        (resolved["epochs"].clone(), resolved["lr"].clone()),
        (4.into(), 0.01.into())
    );
    assert!(
        !dir.path().join("config.json").exists(),
        "--print-config only prints"
    );

    // A run's config.json starts another run; flags beside it win.
    let file = dir.path().join("start.json");
    std::fs::write(&file, serde_json::to_string(&resolved).unwrap()).unwrap();
    let from_file = print(&["--config", file.to_str().unwrap(), "--epochs", "1"]);
    assert_eq!(from_file["optimizer"]["momentum"], 0.9);
    assert_eq!(from_file["epochs"], 1);
    train_ok(
        dir.path(),
        &["--config", file.to_str().unwrap(), "--epochs", "1"],
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(saved["optimizer"]["momentum"], 0.9);

    let mut typo = resolved.clone();
    typo["optimizer"]["momentun"] = 0.5.into();
    std::fs::write(&file, typo.to_string()).unwrap();
    let other = tempfile::tempdir().unwrap();
    let line = refused(train(other.path(), &["--config", file.to_str().unwrap()]));
    assert!(
        line.contains("unknown field 'optimizer.momentun'"),
        "{line}"
    );
    let mut wrong = resolved;
    wrong["epochs"] = "ten".into();
    std::fs::write(&file, wrong.to_string()).unwrap();
    let line = refused(train(other.path(), &["--config", file.to_str().unwrap()]));
    assert!(line.contains("field 'epochs'"), "{line}");
}

#[test]
fn piped_runs_print_progress_lines_and_quiet_runs_only_the_closing_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text = train_ok(
        dir.path(),
        &["--epochs", "1", "--log-every", "2", "--overwrite"],
    );
    let progress: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" images, loss "))
        .collect();
    // 256 images in batches of 32: lines after batches 2, 4 and 6 (not after the last).
    assert_eq!(progress.len(), 3, "{text}");
    assert!(
        progress[0].starts_with("epoch 1/1: 64/256 images, loss "),
        "{text}"
    );
    assert!(
        progress[0].contains("examples/sec, epoch ends in "),
        "{text}"
    );
    assert!(
        text.contains("epoch 1/1: loss "),
        "the epoch line keeps its format: {text}"
    );

    let text = train_ok(dir.path(), &["--epochs", "1", "--quiet", "--overwrite"]);
    assert!(!text.contains("epoch 1/1"), "{text}");
    assert!(text.contains("final model:"), "{text}");

    // The default cadence (at most one a minute) prints none in a run of seconds.
    let text = train_ok(dir.path(), &["--epochs", "1", "--overwrite"]);
    assert!(!text.contains(" images, loss "), "{text}");
    assert!(text.contains("epoch 1/1: loss "), "{text}");
}

#[test]
fn completions_and_the_data_dir_variable() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{}", stderr(&out));
        let script = stdout(&out);
        assert!(
            script.contains("alexnet") && script.contains("import"),
            "{shell}"
        );
    }
    assert!(!run(&["completions", "tcsh"]).status.success());
    let help = stdout(&run(&["eval", "--help"]));
    assert!(help.contains("[env: FASHION_MNIST_DIR"), "{help}");
}

/// `--data-seed` draws the batch order apart from the weights: with the run's own seed it is
/// the default run exactly, with another seed another order; it is saved, and kept on resume.
#[test]
fn data_seed_changes_the_batch_order_and_nothing_else() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let quick = ["--epochs", "1", "--seed", "4"];
    train_ok(dirs[0].path(), &quick);
    train_ok(
        dirs[1].path(),
        &[&quick[..], &["--data-seed", "4"]].concat(),
    );
    train_ok(
        dirs[2].path(),
        &[&quick[..], &["--data-seed", "5"]].concat(),
    );
    let losses: Vec<_> = dirs.iter().map(|d| batch_losses(d.path())).collect();
    assert_eq!(
        losses[0], losses[1],
        "--data-seed equal to --seed is the default"
    );
    assert_ne!(
        losses[0], losses[2],
        "another data seed, another batch order"
    );
    let config = std::fs::read_to_string(dirs[2].path().join("config.json")).unwrap();
    assert!(config.contains("\"seed\": 5"), "{config}");
    let out = train(
        dirs[2].path(),
        &["--resume", "--data-seed", "6", "--epochs", "2"],
    );
    assert!(refused(out).contains("--data-seed 6 conflicts with the run being resumed"));
}

/// `--arch imagenet` trains torchvision's network (recorded in config.json and the report), and
/// a resume with the other network is refused.
#[test]
fn the_imagenet_network_trains_and_is_kept_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    train_ok(dir.path(), &["--epochs", "1", "--arch", "imagenet"]);
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("- network: imagenet\n"), "{report}");
    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(config.contains("\"arch\": \"imagenet\""), "{config}");
    let out = train(dir.path(), &["--resume", "--arch", "d2l", "--epochs", "2"]);
    let line = refused(out);
    assert!(
        line.contains("--arch d2l conflicts with the run being resumed"),
        "{line}"
    );
    let out = common::run(&[
        "infer",
        "--artifact-dir",
        dir.path().to_str().unwrap(),
        "--data-dir",
        common::synthetic_data_dir().to_str().unwrap(),
        "--test-index",
        "0,1",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
}
