//! Training curves, `alexnet plot`, `alexnet report` and the confusion picture, checked against
//! burn-train's own metric logs.

mod common;

use std::path::Path;

use common::{run, stderr, stdout, synthetic_data_dir};

/// Batches of one split of one epoch from the logs: (examples, loss, accuracy in [0, 1]).
fn logged_batches(dir: &Path, split: &str, epoch: usize) -> Vec<(f64, f64, f64)> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(format!("{split}/epoch-{epoch}/{name}"))).unwrap()
    };
    let acc = read("Accuracy.log");
    let loss = read("Loss.log");
    acc.lines()
        .zip(loss.lines())
        .map(|(a, l)| {
            let (a, n) = a.split_once(',').unwrap();
            let l = l.split(',').next().unwrap();
            (
                n.parse().unwrap(),
                l.parse().unwrap(),
                a.parse::<f64>().unwrap() / 100.0,
            )
        })
        .collect()
}

/// Example-weighted (loss, accuracy) of batches.
fn means(batches: &[(f64, f64, f64)]) -> (f64, f64) {
    let n: f64 = batches.iter().map(|b| b.0).sum();
    (
        batches.iter().map(|b| b.0 * b.1).sum::<f64>() / n,
        batches.iter().map(|b| b.0 * b.2).sum::<f64>() / n,
    )
}

fn train(dir: &Path, extra: &[&str]) -> String {
    let data = synthetic_data_dir().to_path_buf();
    let mut args = common::small_run_args(dir, &data);
    for a in [
        "--limit-train",
        "160",
        "--limit-test",
        "64",
        "--batch-size",
        "32",
        "--lr",
        "0.05",
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// Maps SVG pixel coordinates back to data through two labelled ticks on each axis.
struct Axes {
    x: (f64, f64),
    y: (f64, f64),
}

impl Axes {
    fn from_svg(doc: &roxmltree::Document) -> Axes {
        let ticks = |anchor: &str, coordinate: &str| -> Vec<(f64, f64)> {
            doc.descendants()
                .filter(|n| n.has_tag_name("text") && n.attribute("text-anchor") == Some(anchor))
                .filter_map(|n| {
                    Some((
                        n.text()?.trim().parse::<f64>().ok()?,
                        n.attribute(coordinate)?.parse().ok()?,
                    ))
                })
                .collect()
        };
        let fit = |t: Vec<(f64, f64)>| {
            let (a, b) = (t[0], t[t.len() - 1]);
            let scale = (b.1 - a.1) / (b.0 - a.0);
            (scale, a.1 - scale * a.0)
        };
        Axes {
            x: fit(ticks("middle", "x")),
            y: fit(ticks("end", "y")),
        }
    }

    fn data(&self, px: f64, py: f64) -> (f64, f64) {
        ((px - self.x.1) / self.x.0, (py - self.y.1) / self.y.0)
    }
}

/// The data points of the series drawn in `colour` (the 2-px lines; the legend's swatch has 2).
fn series(doc: &roxmltree::Document, axes: &Axes, colour: &str) -> Vec<(f64, f64)> {
    let line = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(colour))
        .max_by_key(|n| n.attribute("points").unwrap().split_whitespace().count())
        .unwrap_or_else(|| panic!("no {colour} series"));
    line.attribute("points")
        .unwrap()
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            axes.data(x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

#[test]
fn curves_match_the_logs_and_survive_a_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(dir, &["--epochs", "1"]);
    train(dir, &["--resume", "--epochs", "3"]);
    let during_training = std::fs::read_to_string(dir.join("curves.svg")).unwrap();

    let out = run(&["plot", "--artifact-dir", dir.to_str().unwrap(), "--png"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let replotted = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    assert_eq!(
        during_training, replotted,
        "the plot from the logs equals the one drawn while training"
    );
    let png = std::fs::read(dir.join("curves.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    let doc = roxmltree::Document::parse(&replotted).expect("well-formed SVG");
    for label in ["train loss", "train acc", "test acc", "epoch"] {
        assert!(
            doc.descendants()
                .any(|n| n.text().map(str::trim) == Some(label)),
            "{label} missing"
        );
    }
    let axes = Axes::from_svg(&doc);
    let close = |a: f64, b: f64| (a - b).abs() < 0.02;

    // Test accuracy: one point per epoch, at epochs 1, 2, 3.
    let test_acc = series(&doc, &axes, "#00FF00");
    assert_eq!(test_acc.len(), 3);
    for (epoch, (x, y)) in (1..=3).zip(&test_acc) {
        let (_, acc) = means(&logged_batches(dir, "valid", epoch));
        assert!(
            close(*x, epoch as f64) && close(*y, acc),
            "epoch {epoch}: ({x}, {y}) vs {acc}"
        );
    }
    // Train loss: running means at fractional epochs; the x axis starts at epoch 1, so epoch 1
    // shows its last point only. 5 batches per epoch -> 5 samples per epoch.
    let train_loss = series(&doc, &axes, "#0000FF");
    assert_eq!(train_loss.len(), 1 + 5 + 5);
    let mut expected = vec![];
    for epoch in 1..=3 {
        let batches = logged_batches(dir, "train", epoch);
        for end in 1..=batches.len() {
            expected.push((
                epoch as f64 - 1.0 + end as f64 / batches.len() as f64,
                means(&batches[..end]),
            ));
        }
    }
    let expected: Vec<_> = expected.into_iter().filter(|(x, _)| *x >= 1.0).collect();
    for ((x, y), (ex, (loss, _))) in train_loss.iter().zip(&expected) {
        assert!(
            close(*x, *ex) && close(*y, *loss),
            "({x}, {y}) vs ({ex}, {loss})"
        );
    }
    let train_acc = series(&doc, &axes, "#FF00FF");
    for ((_, y), (_, (_, acc))) in train_acc.iter().zip(&expected) {
        assert!(close(*y, *acc), "{y} vs {acc}");
    }
}

#[test]
fn report_numbers_equal_the_logged_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let printed = train(dir, &["--epochs", "2"]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert_eq!(report["finished"], true);
    assert_eq!(report["config"]["epochs"], 2);
    assert!(report["device"].as_str().unwrap().starts_with("cpu (flex"));
    for epoch in 1..=2 {
        let row = &report["epochs"][epoch - 1];
        let (loss, acc) = means(&logged_batches(dir, "train", epoch));
        let (test_loss, test_acc) = means(&logged_batches(dir, "valid", epoch));
        for (field, value) in [
            ("train_loss", loss),
            ("train_acc", acc),
            ("test_loss", test_loss),
            ("test_acc", test_acc),
        ] {
            assert!(
                (row[field].as_f64().unwrap() - value).abs() < 1e-9,
                "epoch {epoch} {field}"
            );
        }
        assert!(row["examples_per_sec"].as_f64().unwrap() > 0.0);
        assert!(
            md.contains(&format!(
                "| {epoch} | {loss:.3} | {acc:.3} | {test_loss:.3} | {test_acc:.3} |"
            )),
            "{md}"
        );
    }
    let f = &report["final_metrics"];
    let closing = format!(
        "loss {:.3}, train acc {:.3}, test acc {:.3}",
        f["loss"].as_f64().unwrap(),
        f["train_acc"].as_f64().unwrap(),
        f["test_acc"].as_f64().unwrap()
    );
    assert!(
        printed.lines().any(|l| l == closing),
        "{closing} not in:\n{printed}"
    );
    let best = report["best_epoch"].as_u64().unwrap() as usize;
    let test_loss = |e| means(&logged_batches(dir, "valid", e)).0;
    assert!((1..=2).all(|e| test_loss(best) <= test_loss(e)));
    assert!(report["wall_seconds"].as_f64().unwrap() > 0.0);

    let out = run(&["report", "--artifact-dir", dir.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), md);
}

#[test]
fn interrupted_runs_are_reported_as_unfinished() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(dir, &["--epochs", "1"]);
    // Pretend the run was configured for more epochs and stopped after the first.
    let config = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace("\"epochs\": 1", "\"epochs\": 4");
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::remove_file(dir.join("report.md")).unwrap();
    let out = run(&["report", "--artifact-dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("finished: no (resume with --resume)"),
        "{}",
        stdout(&out)
    );
    assert!(dir.join("report.md").exists());

    let missing = run(&[
        "report",
        "--artifact-dir",
        dir.join("nope").to_str().unwrap(),
    ]);
    assert!(!missing.status.success() && stderr(&missing).contains("does not exist"));
}

#[test]
fn eval_draws_the_confusion_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train(dir, &["--epochs", "1"]);
    let data = synthetic_data_dir().to_path_buf();
    let out = run(&[
        "eval",
        "--artifact-dir",
        dir.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--limit",
        "150",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = std::fs::read_to_string(dir.join("confusion.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let cells = doc.descendants().filter(|n| n.has_tag_name("rect")).count();
    assert_eq!(cells, 1 + 100, "background and 10x10 cells");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for class in ["T-shirt/top", "Ankle boot", "Sneaker"] {
        assert!(texts.contains(&class), "{class} missing");
    }
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).unwrap()).unwrap();
    let counts: Vec<u64> =
        serde_json::from_value::<Vec<Vec<u64>>>(eval["confusion"]["counts"].clone())
            .unwrap()
            .concat();
    let numbers: u64 = texts.iter().filter_map(|t| t.parse::<u64>().ok()).sum();
    assert_eq!(
        numbers,
        counts.iter().sum::<u64>(),
        "every cell shows its count"
    );
}
