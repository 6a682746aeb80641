//! Training, evaluating and predicting on folders of labelled images, through the binary: the
//! PNG folder of a Fashion-MNIST split reads exactly as its IDX files do, colour and grey,
//! PNG and JPEG, any size, the held-out split, and every kind of bad folder.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use alexnet::data::{
    Augmentation, BadImages, FashionMnist, FashionMnistBatcher, FolderBatcher, ImageFile,
    ImageTransform, Sample, Split, export_png_folder,
};
use burn::data::dataset::Dataset;
use common::{folder_run_args, png_stating, run, stderr, stdout, synthetic_data_dir};
use image::{GrayImage, Luma, Rgb, RgbImage};

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// One image file of `class` in `dir`: a bright bar whose place tells the class, on noise, of
/// any size and colour.
fn write_image(path: &Path, class: usize, (w, h): (u32, u32), colour: bool) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let seed = path.to_string_lossy().len() as u32;
    let value = |x: u32, y: u32| {
        let bar = (y * 4 / h) as usize == class % 4;
        let noise = ((x * 31 + y * 17 + seed) % 40) as u8;
        if bar { 200 + noise / 2 } else { noise }
    };
    if colour {
        RgbImage::from_fn(w, h, |x, y| {
            let v = value(x, y);
            Rgb([v, v / 2, 255 - v])
        })
        .save(path)
        .unwrap();
    } else {
        GrayImage::from_fn(w, h, |x, y| Luma([value(x, y)]))
            .save(path)
            .unwrap();
    }
}

/// `train` on a folder, 65 px, a small quick run; `extra` flags added.
fn train_folder(folder: &Path, dir: &Path, extra: &[&str]) -> std::process::Output {
    let args = folder_run_args(folder, dir, extra);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn config(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

#[test]
fn a_png_folder_gives_the_idx_files_tensors_bit_for_bit() {
    let data = FashionMnist::load(Split::Test, Some(synthetic_data_dir())).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("test");
    let names = alexnet::run::fashion_mnist_classes();
    export_png_folder(&data, &names, &out).unwrap();
    for side in [28, 65, 224] {
        let items: Vec<_> = (0..24).map(|i| data.get(i).unwrap()).collect();
        let from_idx = FashionMnistBatcher::new(side).pixels(&items);
        let files: Vec<ImageFile> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let class = alexnet::data::class_folder_name(&names[item.label as usize]);
                ImageFile {
                    path: out.join(class).join(format!("{i:05}.png")),
                    label: item.label as usize,
                }
            })
            .collect();
        let transform = ImageTransform::new(side, 1);
        let bad = BadImages::stop_at_first(|e| panic!("{e}"));
        let batcher = FolderBatcher::new(transform, bad, Augmentation::default());
        let samples = Sample::numbered(files, 1);
        let (from_png, labels) = batcher.pixels(&samples);
        assert_eq!(labels.len(), 24);
        assert!(
            from_png == from_idx,
            "PNG and IDX inputs differ at {side} px"
        );
    }
}

#[test]
fn eval_on_the_png_folder_is_eval_on_the_idx_split() {
    let data = synthetic_data_dir();
    let dir = tempfile::tempdir().unwrap();
    let (run_dir, folder) = (dir.path().join("run"), dir.path().join("test"));
    let out = run(&common::tiny_run_args(&run_dir, &["--epochs", "1"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[
        "export-images",
        "--split",
        "test",
        "--out",
        s(&folder),
        "--data-dir",
        s(data),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let eval = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "eval",
            "--artifact-dir",
            s(&run_dir),
            "--json",
            "--batch-size",
            "1",
        ];
        args.extend(extra);
        let out = run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let idx = eval(&["--data-dir", s(data)]);
    let png = eval(&["--images", s(&folder)]);
    assert_eq!(idx["examples"], png["examples"]);
    assert_eq!(idx["confusion"], png["confusion"]);
    assert_eq!(
        idx["loss"], png["loss"],
        "one image per pass: the same losses, summed exactly"
    );
    assert_eq!(
        png["classes"], idx["classes"],
        "the run's class names and order"
    );
}

#[test]
fn training_from_a_png_folder_learns_as_from_the_idx_files() {
    let Some(real) = common::real_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("fashion");
    for (split, sub, limit) in [("train", "train", "4096"), ("test", "val", "512")] {
        let out = folder.join(sub);
        let args = [
            "export-images",
            "--split",
            split,
            "--limit",
            limit,
            "--out",
            s(&out),
            "--data-dir",
            s(&real),
        ];
        assert!(run(&args).status.success());
    }
    // Momentum gets past plain SGD's plateau within two short epochs.
    let common = [
        "--resize",
        "65",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--lr",
        "0.02",
        "--momentum",
        "0.9",
        "--quiet",
    ];
    let acc = |dir: &Path, extra: &[&str]| -> f64 {
        let mut args = vec!["train", "--artifact-dir", s(dir)];
        args.extend(common);
        args.extend(extra);
        let out = run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
        report["final_metrics"]["test_acc"].as_f64().unwrap()
    };
    let from_idx = acc(
        &dir.path().join("idx"),
        &[
            "--data-dir",
            s(&real),
            "--limit-train",
            "4096",
            "--limit-test",
            "512",
        ],
    );
    let from_png = acc(&dir.path().join("png"), &["--images", s(&folder)]);
    assert!(
        from_idx > 0.5 && from_png > 0.5,
        "both learn: {from_idx} {from_png}"
    );
    assert!(
        (from_idx - from_png).abs() < 0.15,
        "within noise: {from_idx} {from_png}"
    );
}

/// Four classes of mixed PNG and JPEG, grey and colour, of several sizes and aspects.
fn mixed_tree(root: &Path, colour: bool) {
    for class in 0..4 {
        for i in 0..12u32 {
            let ext = if i % 3 == 0 { "jpg" } else { "png" };
            let size = [(40, 40), (80, 50), (30, 90)][(i % 3) as usize];
            let name = ["tulip", "daisy", "rose", "iris"][class];
            let path = root.join(name).join(format!("{i}.{ext}"));
            write_image(&path, class, size, colour && i % 2 == 0);
        }
    }
}

#[test]
fn colour_trees_train_on_three_channels_with_sorted_classes() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, run_dir) = (dir.path().join("flowers"), dir.path().join("run"));
    mixed_tree(&tree, true);
    fs::write(tree.join("rose/notes.txt"), "not an image").unwrap();
    let out = train_folder(&tree, &run_dir, &["--val-split", "0.25"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = config(&run_dir);
    assert_eq!(c["model"]["in_channels"], 3, "some images have colour");
    assert_eq!(c["model"]["num_classes"], 4);
    assert_eq!(
        c["data"]["classes"],
        serde_json::json!(["daisy", "iris", "rose", "tulip"])
    );
    let images: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run_dir.join("images.json")).unwrap()).unwrap();
    let val = images["val"].as_array().unwrap();
    assert_eq!(val.len(), 12, "a quarter of each class's 12");
    for label in 0..4 {
        assert_eq!(
            val.iter().filter(|f| f["label"] == label).count(),
            3,
            "stratified"
        );
    }
    assert_eq!(images["not_images"], 1);

    // A second run of the same folder and seed holds out the same files.
    let again = dir.path().join("again");
    assert!(
        train_folder(&tree, &again, &["--val-split", "0.25"])
            .status
            .success()
    );
    let second: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(again.join("images.json")).unwrap()).unwrap();
    assert_eq!(second["val"], images["val"]);

    // eval, infer and the report use the run's class names.
    let out = run(&["eval", "--artifact-dir", s(&run_dir), "--json"]);
    let eval: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (eval["split"].as_str(), eval["examples"].as_u64()),
        (Some("val"), Some(12))
    );
    assert_eq!(eval["per_class"][0]["label"], "daisy");
    let csv = dir.path().join("p.csv");
    let out = run(&[
        "infer",
        "--artifact-dir",
        s(&run_dir),
        s(&tree),
        "--recursive",
        "--csv",
        s(&csv),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), 1 + 48, "a header and a row per image");
    assert!(rows.lines().skip(1).all(|r| {
        ["daisy", "iris", "rose", "tulip"]
            .iter()
            .any(|c| r.contains(&format!(",{c},")))
    }));
    let report = fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(
        report.contains("4 classes (daisy, iris, rose, tulip)"),
        "{report}"
    );
}

#[test]
fn grey_trees_train_on_one_channel_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("grey");
    mixed_tree(&tree, false);
    let one = dir.path().join("one");
    assert!(train_folder(&tree, &one, &[]).status.success());
    assert_eq!(config(&one)["model"]["in_channels"], 1);
    let three = dir.path().join("three");
    let out = train_folder(&tree, &three, &["--channels", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(config(&three)["model"]["in_channels"], 3);
    let out = run(&[
        "train",
        "--channels",
        "3",
        "--artifact-dir",
        s(&dir.path().join("x")),
    ]);
    assert!(
        stderr(&out).contains("--channels 3 applies to an image folder (--images)"),
        "{}",
        stderr(&out)
    );
}

/// Refused before anything is written, with one line naming the path.
fn refused(folder: &Path, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let out = train_folder(folder, &run_dir, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "accepted: {folder:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for part in expected {
        assert!(err.contains(part), "{part:?} not in: {err}");
    }
    assert!(!run_dir.join("config.json").exists(), "nothing written");
}

#[test]
fn bad_folders_get_one_line_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    refused(&root.join("missing"), &["missing does not exist"]);

    let one = root.join("one");
    write_image(&one.join("cat/a.png"), 0, (20, 20), false);
    refused(&one, &["1 class folder(s) (cat)", "at least 2"]);

    let empty = root.join("empty");
    write_image(&empty.join("cat/a.png"), 0, (20, 20), false);
    fs::create_dir_all(empty.join("dog")).unwrap();
    refused(&empty, &["dog holds no images"]);

    let split = root.join("split");
    for sub in ["train/cat", "train/dog", "val/cat", "val/eel"] {
        write_image(&split.join(sub).join("a.png"), 0, (20, 20), false);
    }
    refused(&split, &["train has cat, dog, val has cat, eel"]);
}

/// A folder of two classes whose `dog` class holds the given bad file beside good ones.
fn tree_with(bad_name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    for class in ["cat", "dog"] {
        for i in 0..4 {
            write_image(
                &tree.join(class).join(format!("{i}.png")),
                1,
                (20, 20),
                false,
            );
        }
    }
    fs::write(tree.join("dog").join(bad_name), bytes).unwrap();
    (dir, tree)
}

#[test]
fn unreadable_images_are_refused_or_skipped_and_reported() {
    let mut png = Vec::new();
    GrayImage::from_pixel(20, 20, Luma([9]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "notes.jpg",
            b"this is text".to_vec(),
            "notes.jpg is not a readable image",
        ),
        (
            "cut.png",
            png[..12].to_vec(),
            "cut.png is not a readable image",
        ),
        (
            "huge.png",
            png_stating(60_000),
            "huge.png is too large to decode (60000x60000",
        ),
    ];
    for (name, bytes, expected) in cases {
        let (dir, tree) = tree_with(name, &bytes);
        refused(&tree, &[expected, "--skip-bad-images"]);
        let run_dir = dir.path().join("run");
        let out = train_folder(&tree, &run_dir, &["--skip-bad-images"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let report = fs::read_to_string(run_dir.join("report.md")).unwrap();
        assert!(
            report.contains("left out as unreadable: 1 images") && report.contains(name),
            "{report}"
        );
    }
}

#[test]
fn an_image_damaged_after_the_scan_stops_the_run_resumably_or_is_skipped() {
    for skip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        mixed_tree(&tree, false);
        let run_dir = dir.path().join("run");
        let mut extra = vec![];
        if skip {
            extra.push("--skip-bad-images");
        }
        assert!(train_folder(&tree, &run_dir, &extra).status.success());
        // Cut the pixel data of one training image: its header still reads.
        let victim = tree.join("rose/1.png");
        let bytes = fs::read(&victim).unwrap();
        fs::write(&victim, &bytes[..bytes.len() - 40]).unwrap();
        let out = run(&[
            "train",
            "--resume",
            "--epochs",
            "2",
            "--artifact-dir",
            s(&run_dir),
        ]);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{err}");
        if skip {
            assert!(out.status.success(), "{err}");
            let report = fs::read_to_string(run_dir.join("report.md")).unwrap();
            assert!(report.contains("rose/1.png"), "{report}");
        } else {
            assert!(!out.status.success());
            assert!(err.contains("rose/1.png is not a readable image"), "{err}");
            assert!(err.contains("the checkpoint of epoch 1 is intact"), "{err}");
            assert!(
                err.contains("alexnet train --resume --artifact-dir"),
                "{err}"
            );
        }
    }
}

#[test]
fn eval_refuses_a_folder_of_other_classes_with_both_lists() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, run_dir) = (dir.path().join("flowers"), dir.path().join("run"));
    mixed_tree(&tree, false);
    assert!(train_folder(&tree, &run_dir, &[]).status.success());
    let other = dir.path().join("other");
    for class in ["cat", "dog", "eel", "fox"] {
        write_image(&other.join(class).join("a.png"), 0, (20, 20), false);
    }
    let out = run(&["eval", "--artifact-dir", s(&run_dir), "--images", s(&other)]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("the folder has cat, dog, eel, fox, the run has daisy, iris, rose, tulip"),
        "{err}"
    );
}
