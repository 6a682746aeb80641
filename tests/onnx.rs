//! `alexnet export --format onnx`: the exported graph run by two runtimes that share no code
//! with Burn, tract (here, in Rust) and ONNX Runtime (through reference/onnx/check_onnx.py,
//! which also runs ONNX's checker and parses the Triton configuration), against the network
//! itself and `alexnet infer`; and the refusals of bad requests.

#![cfg(feature = "flex")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use alexnet::onnx::{self, Batch, Description};
use alexnet_model::{AlexNet, AlexNetConfig, Arch, Preprocess};
use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use common::{ProcessDir, one_line_error, run, stderr, stdout, test_python, tiny_run_args};
use serde_json::Value;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{
    Framework, InferenceModelExt, IntoRunnable, IntoTValue, Tensor as TractTensor, tvec,
};

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A seeded, deterministic input batch in [0, 1).
fn images(count: usize, config: &AlexNetConfig) -> (Vec<f32>, [usize; 4]) {
    let shape = [
        count,
        config.in_channels,
        config.image_size,
        config.image_size,
    ];
    let len = shape.iter().product();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let values = (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    (values, shape)
}

fn burn_logits(net: &AlexNet<Flex>, values: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let input =
        Tensor::<Flex, 4>::from_data(TensorData::new(values.to_vec(), shape), &Default::default());
    net.forward(input).into_data().to_vec().unwrap()
}

/// Runs the ONNX file `bytes` in tract at the input's batch, letting tract bind the batch
/// dimension the file declares (named, or fixed).
fn tract_logits(bytes: &[u8], values: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .expect("tract reads the model")
        .into_optimized()
        .expect("tract optimises the model")
        .into_runnable()
        .expect("tract plans the model");
    let input = TractTensor::from_shape(&shape, values).unwrap();
    let outputs = model
        .run(tvec!(input.into_tvalue()))
        .expect("tract runs the model");
    let view = outputs[0].to_plain_array_view::<f32>().unwrap();
    view.iter().copied().collect()
}

/// The largest difference of each image's logits relative to its largest logit.
fn relative_difference(ours: &[f32], theirs: &[f32], classes: usize) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    ours.chunks(classes)
        .zip(theirs.chunks(classes))
        .map(|(a, b)| {
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
                / scale
        })
        .fold(0f32, f32::max)
}

fn export(net: &AlexNet<Flex>, config: &AlexNetConfig, batch: Batch) -> Vec<u8> {
    let classes: Vec<String> = (0..config.num_classes)
        .map(|c| format!("class {c}"))
        .collect();
    let description = Description {
        config,
        preprocess: Preprocess::for_weights(config.arch, config.in_channels),
        classes: &classes,
    };
    onnx::to_onnx(net, &description, onnx::DEFAULT_OPSET, batch).unwrap()
}

/// Both networks, with the three forms ONNX gets of torchvision's adaptive pool: left out (6x6
/// maps at 224 px), an average pool (12x12 at 415) and an averaging matrix (3x3 at 127, where
/// windows overlap), each at batch 1 and 7 from one file with a dynamic batch, and at batch 3
/// from a file fixed to it.
#[test]
fn tract_computes_what_the_network_computes_for_both_networks() {
    let cases = [
        AlexNetConfig::new().with_image_size(65),
        AlexNetConfig::new().with_image_size(224),
        imagenet(127),
        imagenet(224),
        imagenet(415),
    ];
    for config in cases {
        let net: AlexNet<Flex> = config.init(&Default::default());
        let what = format!("{} at {} px", config.arch, config.image_size);
        let dynamic = export(&net, &config, Batch::Dynamic);
        for count in [1, 7] {
            let (values, shape) = images(count, &config);
            let ours = burn_logits(&net, &values, shape);
            let theirs = tract_logits(&dynamic, &values, shape);
            let diff = relative_difference(&ours, &theirs, config.num_classes);
            eprintln!("{what}, batch {count}: tract within {diff:.1e} of the largest logit");
            assert!(diff < 1e-4, "{what}, batch {count}: {diff}");
        }
        let fixed = export(&net, &config, Batch::Fixed(3));
        let (values, shape) = images(3, &config);
        let diff = relative_difference(
            &burn_logits(&net, &values, shape),
            &tract_logits(&fixed, &values, shape),
            config.num_classes,
        );
        assert!(diff < 1e-4, "{what}, fixed batch 3: {diff}");
    }
}

fn imagenet(side: usize) -> AlexNetConfig {
    AlexNetConfig::for_arch(Arch::Imagenet)
        .with_in_channels(3)
        .with_num_classes(10)
        .with_image_size(side)
}

fn decode(bytes: &[u8]) -> ModelProto {
    prost::Message::decode(bytes).expect("a ModelProto")
}

fn metadata(model: &ModelProto, key: &str) -> String {
    model
        .metadata_props
        .iter()
        .find(|p| p.key == key)
        .unwrap_or_else(|| panic!("no {key} in the metadata"))
        .value
        .clone()
}

/// The graph's input and output by name and shape, the opset and IR version, the classes and
/// the preprocessing in the metadata, read back by tract's own ONNX protobuf types.
#[test]
fn the_model_names_its_input_output_classes_and_preprocessing() {
    let config = imagenet(127);
    let net: AlexNet<Flex> = config.init(&Default::default());
    let classes: Vec<String> = (0..10).map(|c| format!("kind \"{c}\", é")).collect();
    let description = Description {
        config: &config,
        preprocess: Preprocess::Imagenet,
        classes: &classes,
    };
    let model = decode(&onnx::to_onnx(&net, &description, 13, Batch::Dynamic).unwrap());
    assert_eq!((model.ir_version, model.opset_import[0].version), (7, 13));
    let graph = model.graph.as_ref().unwrap();
    let dims = |v: &tract_onnx::pb::ValueInfoProto| -> Vec<String> {
        use tract_onnx::pb::tensor_shape_proto::dimension::Value;
        use tract_onnx::pb::type_proto::Value as Type;
        let Some(Type::TensorType(t)) = &v.r#type.as_ref().unwrap().value else {
            panic!("a tensor")
        };
        t.shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(Value::DimValue(n)) => n.to_string(),
                Some(Value::DimParam(p)) => p.clone(),
                None => "?".into(),
            })
            .collect()
    };
    assert_eq!(graph.input[0].name, "images");
    assert_eq!(dims(&graph.input[0]), ["batch", "3", "127", "127"]);
    assert_eq!(graph.output[0].name, "logits");
    assert_eq!(dims(&graph.output[0]), ["batch", "10"]);
    let read: Vec<String> = serde_json::from_str(&metadata(&model, "alexnet.classes")).unwrap();
    assert_eq!(read, classes);
    assert_eq!(metadata(&model, "alexnet.arch"), "imagenet");
    let spec: Value = serde_json::from_str(&metadata(&model, "alexnet.preprocess")).unwrap();
    assert_eq!(spec["mode"], "RGB");
    assert_eq!(spec["resize_shorter_to"], 127 * 256 / 224);
    assert_eq!(spec["center_crop"], 127);
    assert_eq!(spec["mean"][1].as_f64().unwrap() as f32, 0.456);
    assert_eq!(spec["std"][2].as_f64().unwrap() as f32, 0.225);
    // No dropout in the graph: it is the identity at inference.
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    assert!(!ops.contains(&"Dropout"), "{ops:?}");
    assert_eq!(ops.iter().filter(|o| **o == "Gemm").count(), 3, "{ops:?}");

    let d2l = AlexNetConfig::new().with_image_size(65);
    let net: AlexNet<Flex> = d2l.init(&Default::default());
    let model = decode(&export(&net, &d2l, Batch::Fixed(4)));
    let graph = model.graph.as_ref().unwrap();
    assert_eq!(dims(&graph.input[0]), ["4", "1", "65", "65"]);
    let spec: Value = serde_json::from_str(&metadata(&model, "alexnet.preprocess")).unwrap();
    assert_eq!(
        (spec["mode"].as_str(), spec["mean"].is_null()),
        (Some("L"), true)
    );
}

/// A run trained for one epoch on the synthetic set (65 px), made once for the tests here.
fn tiny_run() -> &'static Path {
    static RUN: std::sync::OnceLock<ProcessDir> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let dir = ProcessDir::new("onnx-run");
        let args = tiny_run_args(dir.path(), &["--epochs", "1"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        dir
    })
    .path()
}

fn export_cli(run_dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["export", "--artifact-dir", s(run_dir)];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn export_writes_an_onnx_file_and_a_triton_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.onnx");
    let done = export_cli(tiny_run(), &["--format", "onnx", "--out", s(&out)]);
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(stdout(&done).contains("ONNX opset 17"), "{}", stdout(&done));
    let bytes = std::fs::read(&out).unwrap();
    let (values, shape) = images(2, &AlexNetConfig::new().with_image_size(65));
    assert_eq!(tract_logits(&bytes, &values, shape).len(), 20);
    // The extension alone chooses ONNX too, and an existing file is kept without --overwrite.
    let again = export_cli(tiny_run(), &["--out", s(&out)]);
    assert!(one_line_error(&again, "existing file").contains("--overwrite"));
    let again = export_cli(
        tiny_run(),
        &["--out", s(&out), "--overwrite", "--opset", "21"],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(decode(&std::fs::read(&out).unwrap()).ir_version, 10);

    let repository = dir.path().join("models");
    let done = export_cli(
        tiny_run(),
        &["--triton", s(&repository), "--triton-name", "fashion"],
    );
    assert!(done.status.success(), "{}", stderr(&done));
    let model_dir = repository.join("fashion");
    let config = std::fs::read_to_string(model_dir.join("config.pbtxt")).unwrap();
    for line in [
        "name: \"fashion\"",
        "max_batch_size: 128",
        "dims: [ 1, 65, 65 ]",
        "dims: [ 10 ]",
        "dynamic_batching {",
    ] {
        assert!(config.contains(line), "{line} in {config}");
    }
    let labels = std::fs::read_to_string(model_dir.join("labels.txt")).unwrap();
    assert_eq!(labels.lines().next(), Some("T-shirt/top"));
    assert!(model_dir.join("1/model.onnx").is_file());
    // A fixed batch is part of every shape, and Triton cannot batch requests itself.
    let fixed = dir.path().join("fixed");
    let done = export_cli(tiny_run(), &["--triton", s(&fixed), "--batch", "4"]);
    assert!(done.status.success(), "{}", stderr(&done));
    let config = std::fs::read_to_string(fixed.join("alexnet/config.pbtxt")).unwrap();
    assert!(config.contains("max_batch_size: 0") && config.contains("dims: [ 4, 1, 65, 65 ]"));
    assert!(!config.contains("dynamic_batching"), "{config}");
}

/// Each bad request gets one line and leaves no file.
#[test]
fn bad_export_requests_get_one_line_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.onnx");
    let cases: [(&[&str], &str); 5] = [
        (&["--opset", "99"], "opset 99"),
        (&["--opset", "seven"], "not an opset number"),
        (&["--batch", "0"], "at least one image"),
        (&["--batch", "many"], "neither `dynamic` nor"),
        (&["--format", "safetensors"], "must end in .safetensors"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["--out", s(&out)];
        args.extend_from_slice(extra);
        let line = one_line_error(&export_cli(tiny_run(), &args), expected);
        assert!(line.contains(expected), "{extra:?}: {line}");
        assert!(!out.exists(), "{extra:?} wrote a file");
    }
    let missing = dir.path().join("no-such-folder").join("model.onnx");
    let line = one_line_error(
        &export_cli(tiny_run(), &["--out", s(&missing)]),
        "missing folder",
    );
    assert!(line.contains("does not exist"), "{line}");
    assert!(!missing.parent().unwrap().exists());

    // A run whose record is cut short.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for file in ["config.json", "model.mpk"] {
        std::fs::copy(tiny_run().join(file), broken.join(file)).unwrap();
    }
    let record = broken.join("model.mpk");
    let len = std::fs::metadata(&record).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&record)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let line = one_line_error(&export_cli(&broken, &["--out", s(&out)]), "corrupt run");
    assert!(line.contains("model.mpk"), "{line}");
    assert!(!out.exists(), "a corrupt run wrote a file");
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &broken)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Seven PNGs cut from two real photos (scikit-image's cat, and its grey camera man, which the
/// colour network sees converted to RGB): shrunk, enlarged, tall, wide and square.
fn photo_pngs(dir: &Path) -> Vec<PathBuf> {
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
    let cat = image::open(photos.join("chelsea.png")).unwrap();
    let camera = image::open(photos.join("camera.png")).unwrap();
    let cuts = [
        ("cat", cat.clone()),
        ("camera", camera.clone()),
        ("cat-tall", cat.crop_imm(100, 0, 200, 300)),
        (
            "cat-small",
            cat.resize_exact(100, 80, image::imageops::FilterType::Triangle),
        ),
        ("camera-wide", camera.crop_imm(0, 200, 300, 120)),
        ("cat-square", cat.crop_imm(50, 20, 257, 257)),
        ("camera-thin", camera.crop_imm(200, 0, 64, 400)),
    ];
    cuts.into_iter()
        .map(|(name, picture)| {
            let path = dir.join(format!("{name}.png"));
            picture.save(&path).unwrap();
            path
        })
        .collect()
}

/// ONNX Runtime, on the exported file, agrees with `alexnet infer --json --logits` on the
/// same files at batch 1 and 7, each side reading the images itself (ONNX Runtime's caller
/// with Pillow and NumPy, as the model's metadata says); ONNX's checker passes and Triton's
/// configuration parses with input and output that match the model. For torchvision's network
/// (formula weights, imported) on photos, and for d2l's on Fashion-MNIST-style PNGs.
#[test]
fn onnx_runtime_agrees_with_infer_on_real_images() {
    let Some(python) = test_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("torchvision.safetensors");
    let config = AlexNetConfig::for_arch(Arch::Imagenet);
    common::state_dict::write(
        &weights,
        &common::state_dict::formula_of::<Flex>(&config),
        None,
    );
    let imagenet_run = dir.path().join("imagenet-run");
    let imported = run(&[
        "import",
        "--from",
        s(&weights),
        "--arch",
        "imagenet",
        "--artifact-dir",
        s(&imagenet_run),
    ]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    check_with_onnx_runtime(&python, &imagenet_run, &photo_pngs(&photos), dir.path());

    let pngs = dir.path().join("fashion");
    let data = common::synthetic_data_dir();
    let exported = run(&[
        "export-images",
        "--limit",
        "7",
        "--out",
        s(&pngs),
        "--data-dir",
        s(data),
    ]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    check_with_onnx_runtime(&python, tiny_run(), &common::files_under(&pngs), dir.path());
}

/// Exports `run_dir` as ONNX with a Triton folder and runs reference/onnx/check_onnx.py on
/// `images` against `infer` at batch 1 and at batch 7.
fn check_with_onnx_runtime(python: &Path, run_dir: &Path, images: &[PathBuf], work: &Path) {
    let repository = work.join(format!(
        "triton-{}",
        run_dir.file_name().unwrap().to_string_lossy()
    ));
    let done = export_cli(run_dir, &["--triton", s(&repository)]);
    assert!(done.status.success(), "{}", stderr(&done));
    let model_dir = repository.join("alexnet");
    let images: Vec<&str> = images.iter().map(|p| s(p)).collect();
    for batch in ["1", "7"] {
        let mut args = vec![
            "infer",
            "--artifact-dir",
            s(run_dir),
            "--json",
            "--logits",
            "--batch-size",
            batch,
        ];
        args.extend_from_slice(&images);
        let inferred = run(&args);
        assert!(inferred.status.success(), "{}", stderr(&inferred));
        let infer_json = work.join(format!("infer-{batch}.json"));
        std::fs::write(&infer_json, &inferred.stdout).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/onnx/check_onnx.py");
        let model = model_dir.join("1/model.onnx");
        let checked = Command::new(python)
            .arg(&script)
            .arg(&model)
            .args(&images)
            .args(["--infer", s(&infer_json), "--triton", s(&model_dir)])
            .output()
            .unwrap();
        let figures = stdout(&checked);
        eprintln!("{}, infer at batch {batch}: {figures}", run_dir.display());
        assert!(checked.status.success(), "{}{}", figures, stderr(&checked));
        let figures: Value = serde_json::from_str(&figures).unwrap();
        assert_eq!(figures["images"], 7);
        assert_eq!(figures["same_top_class"], true);
    }
}
