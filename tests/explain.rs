//! Grad-CAM on a trained network: `infer --explain` end to end, the map finds the object, and
//! the map depends on the learnt weights (Adebayo et al. 2018's model-randomisation check).
//!
//! The network learns to tell dark noise with a bright square somewhere in it from dark noise
//! alone: an object at a known place in each picture, which the map can be checked against.

#![cfg(feature = "flex")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use alexnet::data::{FashionMnist, FashionMnistBatcher, Split};
use alexnet::explain::{Explanation, GradCam, Target};
use alexnet::inference::{self, CheckpointChoice};
use alexnet::run::RunDir;
use burn::backend::{Autodiff, Flex};
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use common::{ProcessDir, run, stderr, stdout, synthetic_data_dir};
use image::{GrayImage, Luma};
use serde_json::Value;

type Train = Autodiff<Flex>;

/// The canvas's side and the object's.
const CANVAS: u32 = 64;
const OBJECT: u32 = 16;
/// The classes, in the order training numbers them.
const CLASSES: [&str; 2] = ["blank", "square"];
/// Input side: the last convolution's grid is 8x8 (20 px a cell), fine enough to place a
/// 40-px object on it.
const SIDE: usize = 160;
/// Images per class for training, and probes (squares) explained afterwards.
const TRAIN: usize = 100;
const PROBES: usize = 20;

/// Whether pixel (y, x) of the object's box is the square's (a 12-px square in a 16-px box).
fn inside(y: u32, x: u32) -> bool {
    (2..14).contains(&y) && (2..14).contains(&x)
}

/// A canvas of dark noise with, for `square`, the square's box at (top, left); `state` is an
/// LCG's state.
fn canvas(class: &str, [top, left]: [u32; 2], state: &mut u64) -> GrayImage {
    GrayImage::from_fn(CANVAS, CANVAS, |x, y| {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (oy, ox) = (y.wrapping_sub(top), x.wrapping_sub(left));
        match class == "square" && oy < OBJECT && ox < OBJECT && inside(oy, ox) {
            true => Luma([200]),
            false => Luma([(*state >> 58) as u8 * 3 / 4]),
        }
    })
}

/// Writes `count` pictures of each of `classes` into `dir/<class>/`, named by where the
/// object's box is (`y12-x40.png`).
fn draw(dir: &Path, classes: &[&str], count: usize, seed: u64) {
    let mut state = seed;
    for &class in classes {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..count {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let span = u64::from(CANVAS - OBJECT + 1);
            let place = [(state >> 33) % span, (state >> 17) % span].map(|v| v as u32);
            let name = format!("{i:03}-y{}-x{}.png", place[0], place[1]);
            canvas(class, place, &mut state)
                .save(dir.join(class).join(name))
                .unwrap();
        }
    }
}

/// The folders (`train/`, `val/`, `probe/`) and a run trained on them, made once per test
/// binary.
fn trained() -> &'static (ProcessDir, PathBuf) {
    static RUN: OnceLock<(ProcessDir, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = ProcessDir::new("explain-shapes");
        let images = dir.path().join("images");
        draw(&images.join("train"), &CLASSES, TRAIN, 1);
        draw(&images.join("val"), &CLASSES, PROBES, 2);
        draw(&dir.path().join("probe"), &["square"], PROBES, 3);
        let artifacts = dir.path().join("run");
        let (images, artifacts_text) = (
            images.display().to_string(),
            artifacts.display().to_string(),
        );
        let side = SIDE.to_string();
        let out = run(&[
            "train",
            "--images",
            &images,
            "--resize",
            &side,
            "--artifact-dir",
            &artifacts_text,
            "--epochs",
            "6",
            "--batch-size",
            "16",
            "--optimizer",
            "adam",
            "--lr",
            "0.0003",
        ]);
        assert!(out.status.success(), "training failed: {}", stderr(&out));
        (dir, artifacts)
    })
}

/// The synthetic Fashion-MNIST-shaped set's input side and the test images explained (each
/// class twice). Its classes are bright bars at fixed places, so a network learns them in a
/// few epochs; its map is also the one the model-randomisation check needs, since an untrained
/// network's map of a bright square on dark noise already peaks on the square (Spearman 0.55
/// with the trained map in one draw), which says little of the learnt weights.
const BARS_SIDE: usize = 112;
const BARS_EXPLAINED: usize = 20;

/// A run trained on the synthetic set of `common`, made once per test binary.
fn bars_run() -> &'static Path {
    static RUN: OnceLock<ProcessDir> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = ProcessDir::new("explain-bars");
        let artifacts = dir.path().display().to_string();
        let data = synthetic_data_dir().display().to_string();
        let side = BARS_SIDE.to_string();
        let out = run(&[
            "train",
            "--resize",
            &side,
            "--artifact-dir",
            &artifacts,
            "--data-dir",
            &data,
            "--epochs",
            "4",
            "--batch-size",
            "32",
            "--lr",
            "0.05",
        ]);
        assert!(out.status.success(), "training failed: {}", stderr(&out));
        dir
    })
    .path()
}

fn trained_run() -> &'static Path {
    &trained().1
}

fn probes() -> Vec<PathBuf> {
    let dir = trained().0.path().join("probe").join("square");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// `infer --explain --json` on the probe pictures, with `extra` flags.
fn explained(extra: &[&str]) -> (Vec<Value>, tempfile::TempDir) {
    let pictures = tempfile::tempdir().unwrap();
    let mut args = vec![
        "infer".to_string(),
        "--artifact-dir".into(),
        trained_run().display().to_string(),
        "--explain".into(),
        "--explain-dir".into(),
        pictures.path().display().to_string(),
        "--json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(probes().iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert!(out.status.success(), "infer --explain: {}", stderr(&out));
    let results: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    (results, pictures)
}

fn grid(result: &Value) -> Vec<Vec<f64>> {
    result["explanation"]["grid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// The grid cells, along one axis of `cells`, that an object at `start` overlaps.
fn object_cells(start: usize, cells: usize) -> std::ops::RangeInclusive<usize> {
    let canvas = CANVAS as usize;
    start * cells / canvas..=(start + OBJECT as usize - 1) * cells / canvas
}

/// Where a probe's object is, from its name: `[top, left]`.
fn place(path: &str) -> [usize; 2] {
    let name = Path::new(path).file_stem().unwrap().to_str().unwrap();
    let number = |tag: &str| {
        let at = name.find(tag).unwrap() + tag.len();
        name[at..].split('-').next().unwrap().parse().unwrap()
    };
    [number("-y"), number("-x")]
}

#[test]
fn each_map_peaks_on_the_object() {
    let (results, pictures) = explained(&[]);
    assert_eq!(results.len(), PROBES);
    let mut right = 0;
    for result in &results {
        let input = result["input"].as_str().unwrap();
        let explained = result["explanation"]["class"].as_u64().unwrap();
        assert_eq!(
            explained,
            result["top"][0]["class"].as_u64().unwrap(),
            "{input}"
        );
        right += usize::from(result["top"][0]["label"] == "square");
        let png = result["explanation"]["png"].as_str().unwrap();
        assert!(Path::new(png).starts_with(pictures.path()), "{png}");
        assert!(image::open(png).unwrap().width() >= SIDE as u32);
        let grid = grid(result);
        let cells = grid.len();
        assert_eq!(cells, 8, "the grid of d2l's network at {SIDE} px");
        let (row, col) = (0..cells * cells)
            .map(|c| (c / cells, c % cells))
            .max_by(|a, b| grid[a.0][a.1].total_cmp(&grid[b.0][b.1]))
            .unwrap();
        let [top, left] = place(input);
        let (rows, cols) = (object_cells(top, cells), object_cells(left, cells));
        assert!(
            rows.contains(&row) && cols.contains(&col),
            "{input}: the map peaks at cell ({row}, {col}), off the object (rows {rows:?}, \
             columns {cols:?}): {grid:?}"
        );
    }
    assert!(
        right * 10 >= results.len() * 9,
        "only {right} of {} probes were classified right: the run learnt too little",
        results.len()
    );
}

#[test]
fn a_class_asked_for_is_the_one_explained_and_one_out_of_range_is_one_line() {
    let (results, _pictures) = explained(&["--explain-class", "0"]);
    assert!(
        results
            .iter()
            .all(|r| r["explanation"]["class"].as_u64() == Some(0))
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "infer",
        "--artifact-dir",
        &trained_run().display().to_string(),
        &probes()[0].display().to_string(),
        "--explain",
        "--explain-class",
        "2",
        "--explain-dir",
        &dir.path().display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--explain-class 2 is out of range"), "{err}");
    assert!(err.contains("2 classes (0 to 1)"), "{err}");
}

/// A copy of the trained run's files (not its subfolders), to damage or to evaluate into.
fn copy_of_trained_run() -> tempfile::TempDir {
    let run_dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(trained_run()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, run_dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    run_dir
}

/// The maps `explainer` draws of `images`, each image's top class.
fn maps(explainer: &GradCam<Train>, images: Tensor<Flex, 4>) -> Vec<Explanation> {
    let targets = vec![Target::default(); images.dims()[0]];
    explainer.explain(images, &targets).unwrap().0
}

/// Spearman's rank correlation (ties get their mean rank); 0 where a map is flat, which
/// ranks nothing (a re-initialised network's map is often all zero after its ReLU).
fn spearman(a: &[f32], b: &[f32]) -> f64 {
    let ranks = |v: &[f32]| {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut ranks = vec![0.0; v.len()];
        let mut start = 0;
        while start < order.len() {
            let end = (start..order.len())
                .find(|&e| v[order[e]] != v[order[start]])
                .unwrap_or(order.len());
            for &i in &order[start..end] {
                ranks[i] = (start + end - 1) as f64 / 2.0;
            }
            start = end;
        }
        ranks
    };
    let (ra, rb) = (ranks(a), ranks(b));
    let mean = (ra.len() as f64 - 1.0) / 2.0;
    let cov: f64 = ra
        .iter()
        .zip(&rb)
        .map(|(x, y)| (x - mean) * (y - mean))
        .sum();
    let var = |r: &[f64]| r.iter().map(|x| (x - mean).powi(2)).sum::<f64>().sqrt();
    match var(&ra) * var(&rb) {
        0.0 => 0.0,
        spread => cov / spread,
    }
}

#[test]
fn reinitialising_the_convolutions_changes_the_map() {
    let device = Default::default();
    let run = RunDir::new(bars_run());
    let model = inference::load_model::<Train>(&run, &CheckpointChoice::Final, &device).unwrap();
    let data = FashionMnist::load(Split::Test, Some(synthetic_data_dir())).unwrap();
    let items: Vec<_> = (0..BARS_EXPLAINED).map(|i| data.get(i).unwrap()).collect();
    let pixels = FashionMnistBatcher::new(BARS_SIDE).pixels(&items);
    let shape = [BARS_EXPLAINED, 1, BARS_SIDE, BARS_SIDE];
    let images = Tensor::from_data(TensorData::new(pixels, shape), &device);

    let trained = maps(&GradCam::new(model.net.clone()), images.clone());
    let flat = |e: &Explanation| e.grid.iter().flatten().copied().collect::<Vec<f32>>();
    let mut correlations = Vec::new();
    // Three seeded re-initialisations, so that one draw does not decide.
    for seed in 1..=3 {
        Train::seed(&device, seed);
        let fresh = model.config.init::<Train>(&device).into_record();
        let mut record = model.net.clone().into_record();
        (record.conv1, record.conv2, record.conv3) = (fresh.conv1, fresh.conv2, fresh.conv3);
        (record.conv4, record.conv5) = (fresh.conv4, fresh.conv5);
        let net = GradCam::new(model.net.clone().load_record(record));
        let randomised = maps(&net, images.clone());
        for (a, b) in trained.iter().zip(&randomised) {
            correlations.push(spearman(&flat(a), &flat(b)));
        }
    }
    let mean = correlations.iter().sum::<f64>() / correlations.len() as f64;
    eprintln!(
        "Spearman rank correlation, trained against re-initialised convolutions: mean {mean:.2}, each {correlations:.2?}"
    );
    assert!(
        mean < 0.5,
        "the map barely depends on the learnt convolutions: mean Spearman {mean:.2} \
         ({correlations:.2?})"
    );
}

#[test]
fn spearman_of_a_ranking_with_itself_is_one_and_reversed_minus_one() {
    let a = [0.0, 0.0, 1.0, 2.0, 5.0];
    assert!((spearman(&a, &a) - 1.0).abs() < 1e-12);
    let reversed: Vec<f32> = a.iter().map(|v| -v).collect();
    assert!((spearman(&a, &reversed) + 1.0).abs() < 1e-12);
    assert_eq!(spearman(&a, &[0.0; 5]), 0.0);
}

#[test]
fn a_corrupt_record_is_one_line_before_anything_is_explained() {
    let run_dir = copy_of_trained_run();
    let record = run_dir.path().join("model.mpk");
    let bytes = std::fs::read(&record).unwrap();
    std::fs::write(&record, &bytes[..bytes.len() / 3]).unwrap();
    let pictures = tempfile::tempdir().unwrap();
    let out = run(&[
        "infer",
        "--artifact-dir",
        &run_dir.path().display().to_string(),
        &probes()[0].display().to_string(),
        "--explain",
        "--explain-dir",
        &pictures.path().display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("model.mpk"), "{err}");
    assert_eq!(std::fs::read_dir(pictures.path()).unwrap().count(), 0);
}

#[test]
fn eval_draws_the_most_confident_mistakes_named_by_their_paths() {
    // Five squares filed under `blank` (wrong labels) and five under `square`.
    let folder = tempfile::tempdir().unwrap();
    let probes = probes();
    let (mislabelled, right) = probes[..10].split_at(5);
    for (class, files) in [("blank", mislabelled), ("square", right)] {
        std::fs::create_dir_all(folder.path().join(class)).unwrap();
        for file in files {
            std::fs::copy(
                file,
                folder.path().join(class).join(file.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    let run_dir = copy_of_trained_run();
    let out = run(&[
        "eval",
        "--artifact-dir",
        &run_dir.path().display().to_string(),
        "--images",
        &folder.path().display().to_string(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("mistakes.html"), "{}", stdout(&out));
    let html = std::fs::read_to_string(run_dir.path().join("mistakes.html")).unwrap();
    let figures: Vec<&str> = html.split("<figure>").skip(1).collect();
    assert_eq!(figures.len(), 5, "the five mislabelled squares: {html}");
    let mut last = f64::INFINITY;
    for figure in &figures {
        let name = figure
            .split("<code>")
            .nth(1)
            .unwrap()
            .split("</code>")
            .next()
            .unwrap();
        assert!(
            name.contains("/blank/")
                && mislabelled
                    .iter()
                    .any(|f| name.ends_with(f.file_name().unwrap().to_str().unwrap())),
            "{name} is one of the mislabelled files"
        );
        assert!(figure.contains("predicted <b>square</b>") && figure.contains("true <b>blank</b>"));
        assert!(figure.contains("data:image/png;base64,"));
        let confidence: f64 = figure
            .split("predicted <b>square</b> ")
            .nth(1)
            .unwrap()
            .split('%')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            confidence <= last,
            "most confident first: {confidence} after {last}"
        );
        last = confidence;
    }
    let sheet = image::open(run_dir.path().join("mistakes.png")).unwrap();
    let one = image::load_from_memory(&{
        use base64::Engine;
        let data = figures[0]
            .split("base64,")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap()
    })
    .unwrap();
    assert_eq!(sheet.width(), 4 * one.width(), "four pictures to a row");
    assert_eq!(
        sheet.height(),
        2 * one.height(),
        "five pictures on two rows"
    );
}

/// A copy of the trained run with its logs, for `report` to work on; not its checkpoints (a
/// gigabyte of records and optimizer states that `report` does not read when the final model
/// is there).
fn logged_copy_of_trained_run() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            match path.is_dir() {
                true if path.ends_with("checkpoint") => {}
                true => copy(&path, &target),
                false => drop(std::fs::copy(&path, &target).unwrap()),
            }
        }
    }
    let run_dir = tempfile::tempdir().unwrap();
    copy(trained_run(), run_dir.path());
    run_dir
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn training_ends_by_evaluating_the_final_model_on_its_validation_images_with_a_gallery() {
    let dir = trained_run();
    let eval = read_json(&dir.join("eval.json"));
    assert_eq!(eval["split"], "val");
    assert_eq!(eval["examples"], (2 * PROBES) as u64);
    assert!(eval["checkpoint"].as_str().unwrap().ends_with("model.mpk"));
    // The same images and weights as the last epoch's validation pass: the same accuracy.
    let report = read_json(&dir.join("report.json"));
    let last = report["epochs"].as_array().unwrap().last().unwrap().clone();
    let accuracy = eval["accuracy"].as_f64().unwrap();
    assert!(
        (accuracy - last["test_acc"].as_f64().unwrap()).abs() < 1e-9,
        "eval {accuracy} against the last epoch's {last}"
    );
    assert_eq!(report["evaluation"]["accuracy"], eval["accuracy"]);
    let wrong = ((1.0 - accuracy) * (2 * PROBES) as f64).round() as usize;
    let html = std::fs::read_to_string(dir.join("mistakes.html")).unwrap();
    assert_eq!(html.matches("<figure>").count(), wrong.min(16), "{html}");
    assert!(dir.join("mistakes.png").exists() || wrong == 0);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("mistakes.html"), "{md}");
}

#[test]
fn report_brings_the_evaluation_and_gallery_up_to_date_and_leaves_a_current_one_alone() {
    let run_dir = logged_copy_of_trained_run();
    let dir = run_dir.path();
    let trained = read_json(&dir.join("eval.json"));
    for file in [
        "eval.json",
        "mistakes.html",
        "mistakes.png",
        "confusion.svg",
    ] {
        std::fs::remove_file(dir.join(file)).unwrap_or(());
    }
    let artifacts = dir.display().to_string();
    let no_gallery = run(&["report", "--artifact-dir", &artifacts, "--no-gallery"]);
    assert!(no_gallery.status.success(), "{}", stderr(&no_gallery));
    assert!(
        !dir.join("eval.json").exists(),
        "--no-gallery evaluates nothing"
    );

    let out = run(&["report", "--artifact-dir", &artifacts]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("evaluating"), "{}", stderr(&out));
    assert!(stdout(&out).contains("mistakes.html"), "{}", stdout(&out));
    let eval = read_json(&dir.join("eval.json"));
    assert_eq!(eval["accuracy"], trained["accuracy"]);
    assert_eq!(eval["split"], "val");
    let gallery = dir.join("mistakes.html");
    let modified = || std::fs::metadata(&gallery).unwrap().modified().unwrap();
    let drawn = modified();

    let again = run(&["report", "--artifact-dir", &artifacts]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("up to date"), "{}", stderr(&again));
    assert_eq!(modified(), drawn, "a current gallery is left alone");

    // A model written after the gallery (a run resumed and trained further) is evaluated anew.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let model = std::fs::read(dir.join("model.mpk")).unwrap();
    std::fs::write(dir.join("model.mpk"), model).unwrap();
    let newer = run(&["report", "--artifact-dir", &artifacts]);
    assert!(stderr(&newer).contains("evaluating"), "{}", stderr(&newer));
    assert!(modified() > drawn);
}
