//! `alexnet import` and `alexnet export` through the binary: the round trip is bit-identical,
//! an imported run works with `eval` and `infer`, and every kind of wrong file gets one line.

#![cfg(feature = "flex")]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use common::state_dict::{self, Entry};
use safetensors::Dtype;

/// The smallest valid input side keeps the files at 86 MB (fc2 alone is 4096 x 4096).
const RESIZE: usize = 65;

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `alexnet` and returns (success, stdout, stderr).
fn alexnet(args: &[&str]) -> (bool, String, String) {
    let out = common::run(args);
    (
        out.status.success(),
        common::stdout(&out),
        common::stderr(&out),
    )
}

fn import(from: &Path, dir: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "import",
        "--from",
        path_str(from),
        "--artifact-dir",
        path_str(dir),
    ];
    args.extend_from_slice(extra);
    alexnet(&args)
}

/// The single error line of a failed command, checked to be one line and no panic.
fn error_line(result: (bool, String, String)) -> String {
    let (ok, _, stderr) = result;
    assert!(!ok, "the command should fail");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

/// `alexnet export` of `run` to `out`.
fn export(run: &Path, out: &Path) -> (bool, String, String) {
    alexnet(&[
        "export",
        "--artifact-dir",
        path_str(run),
        "--out",
        path_str(out),
    ])
}

/// `entries` in the order a safetensors file lists them (by key).
fn by_key(entries: &[Entry]) -> Vec<Entry> {
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    sorted
}

fn write_dict(dir: &Path, name: &str, entries: &[Entry]) -> PathBuf {
    let path = dir.join(name);
    state_dict::write(&path, entries, None);
    path
}

#[test]
fn import_export_import_is_bit_identical_and_the_run_is_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let original = state_dict::formula::<Flex>(RESIZE);
    let file = write_dict(tmp.path(), "d2l.safetensors", &original);
    let (run1, run2) = (tmp.path().join("run1"), tmp.path().join("run2"));
    let resize = RESIZE.to_string();
    let (ok, stdout, stderr) = import(&file, &run1, &["--resize", &resize]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("safetensors") && stdout.contains("model.mpk"),
        "{stdout}"
    );

    let exported = tmp.path().join("exported.safetensors");
    let (ok, _, stderr) = export(&run1, &exported);
    assert!(ok, "{stderr}");
    let (entries, metadata) = state_dict::read(&exported);
    let sorted = by_key(&original);
    assert!(
        entries == sorted,
        "export gives back the imported tensors, bit for bit"
    );
    assert_eq!(metadata.get("alexnet.image_size"), Some(&resize));
    assert_eq!(metadata.get("format").map(String::as_str), Some("pt"));

    // The second import reads the input side from the exported file's metadata.
    let (ok, stdout, stderr) = import(&exported, &run2, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("--resize {RESIZE}")), "{stdout}");
    let again = tmp.path().join("again.safetensors");
    assert!(export(&run2, &again).0);
    assert!(
        state_dict::read(&again).0 == sorted,
        "import -> export -> import is bit-identical"
    );

    // The imported run is a run: eval and infer use it.
    let data = common::synthetic_data_dir();
    let (ok, stdout, stderr) = alexnet(&[
        "eval",
        "--artifact-dir",
        path_str(&run1),
        "--data-dir",
        path_str(data),
        "--limit",
        "32",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("accuracy"), "{stdout}");
    let (ok, _, stderr) = alexnet(&[
        "infer",
        "--artifact-dir",
        path_str(&run1),
        "--data-dir",
        path_str(data),
        "--test-index",
        "0,1",
    ]);
    assert!(ok, "{stderr}");

    // An existing run and an existing --out are kept unless --overwrite.
    let line = error_line(import(&file, &run1, &["--resize", &resize]));
    assert!(line.contains("--overwrite"), "{line}");
    assert!(import(&file, &run1, &["--resize", &resize, "--overwrite"]).0);
    let line = error_line(export(&run1, &exported));
    assert!(
        line.contains("exists") && line.contains("--overwrite"),
        "{line}"
    );
    let line = error_line(export(&run1, &tmp.path().join("net.pt")));
    assert!(line.contains(".safetensors"), "{line}");
}

/// A valid dict at `RESIZE` with `change` applied, imported; returns the error line.
fn import_changed(change: impl FnOnce(&mut Vec<Entry>)) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let mut entries = state_dict::formula::<Flex>(RESIZE);
    change(&mut entries);
    let file = write_dict(tmp.path(), "changed.safetensors", &entries);
    let resize = RESIZE.to_string();
    let line = error_line(import(
        &file,
        &tmp.path().join("run"),
        &["--resize", &resize],
    ));
    assert!(
        !tmp.path().join("run").exists(),
        "nothing written for a bad file"
    );
    line
}

fn entry<'a>(entries: &'a mut [Entry], key: &str) -> &'a mut Entry {
    entries.iter_mut().find(|e| e.key == key).unwrap()
}

#[test]
fn wrong_state_dicts_get_one_line_naming_the_fix() {
    let line = import_changed(|e| e.retain(|t| t.key != "20.bias"));
    assert!(line.contains("no tensor '20.bias'"), "{line}");

    let line = import_changed(|e| {
        let mut extra = e[1].clone();
        extra.key = "21.bias".into();
        e.push(extra);
    });
    assert!(
        line.contains("'21.bias'") && line.contains("another network"),
        "{line}"
    );

    let line = import_changed(|e| entry(e, "14.weight").shape.reverse());
    assert!(line.contains("the transpose of nn.Linear"), "{line}");

    let line = import_changed(|e| {
        let t = entry(e, "0.bias");
        t.dtype = Dtype::F16;
        t.bytes.truncate(t.bytes.len() / 2);
    });
    assert!(line.contains("F16") && line.contains("float32"), "{line}");

    // Weights saved at another input side: the message names the sizes that fit.
    let tmp = tempfile::tempdir().unwrap();
    let file = write_dict(
        tmp.path(),
        "at65.safetensors",
        &state_dict::formula::<Flex>(RESIZE),
    );
    let line = error_line(import(&file, &tmp.path().join("run"), &["--resize", "128"]));
    assert!(
        line.contains("'14.weight'") && line.contains("fits --resize 65 to"),
        "{line}"
    );

    // The state dict nested in a checkpoint dict (keys `model.0.weight`, …): named, then read.
    let nested: Vec<Entry> = state_dict::formula::<Flex>(RESIZE)
        .into_iter()
        .map(|e| Entry {
            key: format!("model.{}", e.key),
            ..e
        })
        .collect();
    let file = write_dict(tmp.path(), "nested.safetensors", &nested);
    let run = tmp.path().join("nested-run");
    let line = error_line(import(&file, &run, &["--resize", "65"]));
    assert!(
        line.contains("full checkpoint") && line.contains("--key model"),
        "{line}"
    );
    let (ok, _, stderr) = import(&file, &run, &["--resize", "65", "--key", "model"]);
    assert!(ok, "{stderr}");
    let line = error_line(import(&file, &run, &["--resize", "65", "--key", "nope"]));
    assert!(line.contains("'nope'") && line.contains("model"), "{line}");
}

#[test]
fn files_that_are_not_state_dicts_get_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch");

    let text = tmp.path().join("notes.pt");
    std::fs::write(&text, "not weights").unwrap();
    let line = error_line(import(&text, &run, &[]));
    assert!(
        line.contains("neither a PyTorch file nor safetensors"),
        "{line}"
    );

    let empty = write_dict(tmp.path(), "empty.safetensors", &[]);
    let line = error_line(import(&empty, &run, &[]));
    assert!(line.contains("holds no tensors"), "{line}");

    let line = error_line(import(&tmp.path().join("missing.pt"), &run, &[]));
    assert!(line.contains("cannot read"), "{line}");

    // torch.save files (tests/fixtures/torch, from reference/pytorch/parity.py pickles).
    let line = error_line(import(&fixtures.join("list.pt"), &run, &[]));
    assert!(line.contains("not a state dict"), "{line}");
    let line = error_line(import(&fixtures.join("other_network.pt"), &run, &[]));
    assert!(
        line.contains("'0.weight'") && line.contains("[2, 3]"),
        "{line}"
    );
    let checkpoint = fixtures.join("checkpoint.pt");
    let line = error_line(import(&checkpoint, &run, &[]));
    assert!(line.contains("--key model_state_dict"), "{line}");
    let line = error_line(import(&checkpoint, &run, &["--key", "model_state_dict"]));
    assert!(
        line.contains("'0.weight'") && line.contains("[2, 3]"),
        "{line}"
    );
    assert!(!run.exists(), "nothing written for a bad file");
}

#[test]
fn exported_metadata_is_only_a_default() {
    // A safetensors file with a foreign metadata map imports at the default side (224) unless
    // --resize is given: here the weights are for 65, so the default fails with the hint.
    let tmp = tempfile::tempdir().unwrap();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let file = tmp.path().join("foreign.safetensors");
    state_dict::write(&file, &state_dict::formula::<Flex>(RESIZE), Some(metadata));
    let line = error_line(import(&file, &tmp.path().join("run"), &[]));
    assert!(line.contains("--resize 224"), "{line}");
}

/// `infer --arch imagenet` without a run: torchvision's weights from the cache folder (where
/// `alexnet download` puts them; here a formula-weight file under their name), imported there
/// once; and --arch checked against a run that holds the other network.
#[test]
fn infer_with_arch_imagenet_alone_reads_torchvisions_weights_from_the_cache() {
    use alexnet_model::{AlexNetConfig, Arch};
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let weights = state_dict::formula_of::<Flex>(&AlexNetConfig::for_arch(Arch::Imagenet));
    write_dict(&cache, "alexnet-owt-7be5be79.pth", &weights);
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos/china.jpg");
    let infer = |extra: &[&str]| {
        let mut args = vec!["infer", path_str(&photo), "--cache-dir", path_str(&cache)];
        args.extend_from_slice(extra);
        alexnet(&args)
    };
    let (ok, first, stderr) = infer(&["--arch", "imagenet"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("imported torchvision's ImageNet weights"),
        "{stderr}"
    );
    assert_eq!(first.trim().split(", ").count(), 5, "top 5: {first}");
    let (ok, second, stderr) = infer(&["--arch", "imagenet"]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("imported"), "imported once: {stderr}");
    assert_eq!(first, second);

    let line = error_line(infer(&["--arch", "d2l"]));
    assert!(line.contains("--artifact-dir"), "{line}");
    let run = cache.join("torchvision-alexnet-imagenet");
    let line = error_line(infer(&["--arch", "d2l", "--artifact-dir", path_str(&run)]));
    assert!(
        line.contains("holds imagenet's network, not d2l's"),
        "{line}"
    );
}

/// torchvision's network: its state dict (formula weights, as a seeded `alexnet()` would hold
/// random ones) imports as the ImageNet network with its 1,000 classes, predicts, exports back
/// bit for bit with torchvision's keys, and is refused as d2l's, as d2l's is refused as it.
#[test]
fn a_torchvision_state_dict_imports_predicts_and_exports_back() {
    use alexnet_model::{AlexNetConfig, Arch};
    let tmp = tempfile::tempdir().unwrap();
    let config = AlexNetConfig::for_arch(Arch::Imagenet);
    let original = state_dict::formula_of::<Flex>(&config);
    let file = write_dict(tmp.path(), "alexnet.safetensors", &original);
    let run = tmp.path().join("run");
    let (ok, stdout, stderr) = import(&file, &run, &[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("imagenet's network") && stdout.contains("61,100,840 parameters"),
        "{stdout}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved["model"]["arch"], "imagenet");
    assert_eq!(saved["model"]["in_channels"], 3);
    assert_eq!(saved["data"]["classes"].as_array().unwrap().len(), 1000);
    assert_eq!(saved["data"]["classes"][0], "tench");

    // A colour image in, the top 5 of ImageNet's classes out.
    let image = tmp.path().join("photo.png");
    image::RgbImage::from_fn(300, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    })
    .save(&image)
    .unwrap();
    // (ImageNet's network shows 5 classes unless told otherwise.) A grey photo is made RGB as
    // PIL's convert("RGB") does, and --json says so.
    let grey = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos/camera.jpg");
    let (ok, stdout, stderr) = alexnet(&[
        "infer",
        "--artifact-dir",
        path_str(&run),
        path_str(&image),
        path_str(&grey),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let top = answer[0]["top"]
        .as_array()
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(top.len(), 5, "{stdout}");
    assert!(answer[0].get("converted").is_none(), "{stdout}");
    assert_eq!(answer[1]["converted"], "grey to RGB", "{stdout}");
    let classes = saved["data"]["classes"].as_array().unwrap();
    for entry in top {
        let class = entry["class"].as_u64().unwrap() as usize;
        assert_eq!(entry["label"], classes[class], "{stdout}");
    }

    let exported = tmp.path().join("exported.safetensors");
    let (ok, _, stderr) = export(&run, &exported);
    assert!(ok, "{stderr}");
    let (entries, metadata) = state_dict::read(&exported);
    assert!(
        entries == by_key(&original),
        "export gives back torchvision's tensors, bit for bit"
    );
    assert_eq!(
        metadata.get("alexnet.arch").map(String::as_str),
        Some("imagenet")
    );

    // Each network's file given as the other's.
    let line = error_line(import(
        &file,
        &tmp.path().join("as-d2l"),
        &["--arch", "d2l"],
    ));
    assert!(
        line.contains("is torchvision's alexnet()") && line.contains("--arch imagenet"),
        "{line}"
    );
    let d2l = write_dict(
        tmp.path(),
        "d2l.safetensors",
        &state_dict::formula::<Flex>(RESIZE),
    );
    let resize = RESIZE.to_string();
    let line = error_line(import(
        &d2l,
        &tmp.path().join("as-imagenet"),
        &["--arch", "imagenet", "--resize", &resize],
    ));
    assert!(
        line.contains("is d2l's AlexNet nn.Sequential") && line.contains("--arch d2l"),
        "{line}"
    );
    // Fine-tuning from the file on real photos (tiles of scikit-image's cat and camera man):
    // a new head for 2 classes, the convolutions frozen, ImageNet's preprocessing kept.
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
    let folder = tmp.path().join("photos");
    for (class, photo) in [("cat", "chelsea.png"), ("camera", "camera.png")] {
        let image = image::open(photos.join(photo)).unwrap();
        std::fs::create_dir_all(folder.join(class)).unwrap();
        for i in 0..6u32 {
            let tile = image.crop_imm(i * 20, i * 10, 200, 160);
            tile.save(folder.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let tuned = tmp.path().join("tuned");
    let (ok, stdout, stderr) = alexnet(&[
        "train",
        "--images",
        path_str(&folder),
        "--val-split",
        "0.34",
        "--init-from",
        path_str(&file),
        "--arch",
        "imagenet",
        "--freeze-features",
        "--head-lr-mult",
        "10",
        "--resize",
        "65",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--artifact-dir",
        path_str(&tuned),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("fc3 re-initialised (Xavier) for 2 classes"),
        "{stdout}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tuned.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        saved["data"]["preprocess"], "imagenet",
        "ImageNet's normalisation kept"
    );
    assert_eq!(
        saved["model"]["in_channels"], 3,
        "the grey camera man read as RGB"
    );

    // A key missing: named with the parameter it fills.
    let mut missing = original;
    missing.retain(|e| e.key != "classifier.6.bias");
    let file = write_dict(tmp.path(), "missing.safetensors", &missing);
    let line = error_line(import(&file, &tmp.path().join("missing"), &[]));
    assert!(line.contains("'classifier.6.bias' (fc3.bias)"), "{line}");
}
