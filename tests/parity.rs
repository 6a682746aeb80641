//! Cross-backend parity, flex against ndarray: the same weights and batch give the same logits,
//! one SGD step gives the same weights, and a record written on one backend predicts the same
//! classes on the other. Built when both features are on (CI: `--features ndarray`).

#![cfg(all(feature = "flex", feature = "ndarray"))]

mod common;

use alexnet::data::ImageBatch;
use alexnet::training::Classifier;
use alexnet_model::{AlexNet, AlexNetConfig, Arch};
use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::Module;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use common::same_weights::{initial_record, initial_record_of, load, load_of, test_batch};

/// Logits may differ by summation order only: measured max abs difference is far below this.
const LOGIT_TOLERANCE: f32 = 1e-3;
/// Weights after one SGD step (lr 0.01) differ by the gradients' rounding times the lr.
const WEIGHT_TOLERANCE: f32 = 1e-5;

fn max_abs_diff<A: Backend, B: Backend, const D: usize>(a: Tensor<A, D>, b: Tensor<B, D>) -> f32 {
    let a: Vec<f32> = a.into_data().convert::<f32>().to_vec().unwrap();
    let b: Vec<f32> = b.into_data().convert::<f32>().to_vec().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn argmax(logits: Vec<f32>) -> Vec<usize> {
    logits
        .chunks(10)
        .map(|row| (0..10).max_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap())
        .collect()
}

#[test]
fn same_weights_same_batch_same_logits_and_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let record = initial_record(tmp.path(), 7);
    let (flex_net, nd_net) = (load::<Flex>(&record), load::<NdArray>(&record));
    let flex_logits = flex_net.forward(test_batch::<Flex>(&Default::default()).images);
    let nd_logits = nd_net.forward(test_batch::<NdArray>(&Default::default()).images);
    let classes_flex = argmax(flex_logits.clone().into_data().to_vec().unwrap());
    let classes_nd = argmax(nd_logits.clone().into_data().to_vec().unwrap());
    let diff = max_abs_diff(flex_logits, nd_logits);
    eprintln!("flex vs ndarray: max abs logit difference {diff:e}");
    assert!(diff <= LOGIT_TOLERANCE, "{diff}");
    assert_eq!(
        classes_flex, classes_nd,
        "a record loaded on another backend predicts the same classes"
    );
}

/// One SGD step (lr 0.01) on backend `B` from `net`, returning the updated network.
fn sgd_step<B: burn::tensor::backend::AutodiffBackend>(net: AlexNet<B>) -> AlexNet<B> {
    sgd_step_on(net, test_batch::<B>(&Default::default()))
}

/// One SGD step (lr 0.01) on `batch` from `net`.
fn sgd_step_on<B: burn::tensor::backend::AutodiffBackend>(
    net: AlexNet<B>,
    batch: ImageBatch<B>,
) -> AlexNet<B> {
    let model = Classifier::new(net);
    let output = model.forward_classification(batch);
    let grads = GradientsParams::from_grads(output.loss.backward(), &model);
    let mut optimizer = SgdConfig::new().init::<B, Classifier<B>>();
    optimizer.step(0.01, model, grads).net
}

#[test]
fn one_sgd_step_gives_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let record = initial_record(tmp.path(), 11);
    let flex_after = sgd_step(load::<Autodiff<Flex>>(&record));
    let nd_after = sgd_step(load::<Autodiff<NdArray>>(&record));
    let flex_record = tmp.path().join("flex");
    flex_after
        .clone()
        .save_file(&flex_record, &alexnet::run::recorder())
        .unwrap();
    let nd_record = tmp.path().join("nd");
    nd_after
        .save_file(&nd_record, &alexnet::run::recorder())
        .unwrap();
    // Compare every parameter through records loaded on one backend.
    let (a, b, before) = (
        load::<Flex>(&flex_record),
        load::<Flex>(&nd_record),
        load::<Flex>(&record),
    );
    let flat = |net: &AlexNet<Flex>| -> Vec<Tensor<Flex, 1>> {
        let mut tensors = Vec::new();
        let mut collect = Collector(&mut tensors);
        net.visit(&mut collect);
        tensors
    };
    let (pa, pb, p0) = (flat(&a), flat(&b), flat(&before));
    assert_eq!(pa.len(), 16);
    let mut worst = 0.0f32;
    let mut moved = 0.0f32;
    for ((x, y), z) in pa.into_iter().zip(pb).zip(p0) {
        moved = moved.max(max_abs_diff(x.clone(), z));
        worst = worst.max(max_abs_diff(x, y));
    }
    eprintln!(
        "flex vs ndarray after one SGD step: max abs weight difference {worst:e} (step moved weights by up to {moved:e})"
    );
    assert!(
        moved > 10.0 * WEIGHT_TOLERANCE,
        "the step must move the weights: {moved}"
    );
    assert!(worst <= WEIGHT_TOLERANCE, "{worst}");
}

struct Collector<'a>(&'a mut Vec<Tensor<Flex, 1>>);

impl burn::module::ModuleVisitor<Flex> for Collector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<Flex, D>>) {
        self.0.push(param.val().flatten(0, D - 1));
    }
}

#[test]
fn a_model_trained_on_flex_predicts_the_same_on_ndarray() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::synthetic_data_dir().to_path_buf();
    let args = common::tiny_run_args(tmp.path(), &["--epochs", "1"]);
    let out = common::run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", common::stderr(&out));
    let infer = |backend: &str| -> serde_json::Value {
        let out = common::run(&[
            "infer",
            "--backend",
            backend,
            "--artifact-dir",
            tmp.path().to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--test-index",
            "0,1,2,3,4,5,6,7",
            "--json",
        ]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        serde_json::from_str(&common::stdout(&out)).unwrap()
    };
    let (flex, nd) = (infer("flex"), infer("ndarray"));
    for i in 0..8 {
        assert_eq!(
            flex[i]["top"][0]["class"], nd[i]["top"][0]["class"],
            "image {i}"
        );
        let (p, q) = (
            flex[i]["top"][0]["probability"].as_f64().unwrap(),
            nd[i]["top"][0]["probability"].as_f64().unwrap(),
        );
        assert!((p - q).abs() < 1e-4, "image {i}: {p} vs {q}");
    }
}

/// torchvision's network at its own shapes (3 input channels, 64 and 192 channels, 27x27 and
/// 13x13 maps, the adaptive pool): flex's kernels against ndarray's, forward and one SGD step.
#[test]
fn the_imagenet_network_agrees_across_backends_at_224() {
    let tmp = tempfile::tempdir().unwrap();
    let config = AlexNetConfig::for_arch(Arch::Imagenet)
        .with_num_classes(10)
        .with_dropout(0.0);
    let record = initial_record_of(tmp.path(), 13, &config);
    let shape = [2, 3, 224, 224];
    let pixels: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let images = TensorData::new(pixels, shape);
    let targets = TensorData::new(vec![3i64, 7], [2]);

    let flex: AlexNet<Flex> = load_of(&record, &config);
    let nd: AlexNet<NdArray> = load_of(&record, &config);
    let flex_logits = flex.forward(Tensor::from_data(images.clone(), &Default::default()));
    let nd_logits = nd.forward(Tensor::from_data(images.clone(), &Default::default()));
    let diff = max_abs_diff(flex_logits, nd_logits);
    eprintln!("imagenet, flex vs ndarray: max abs logit difference {diff:e}");
    assert!(diff <= LOGIT_TOLERANCE, "{diff}");

    fn batch<B: Backend>(images: &TensorData, targets: &TensorData) -> ImageBatch<B> {
        let device = Default::default();
        ImageBatch {
            images: Tensor::from_data(images.clone(), &device),
            targets: Tensor::from_data(targets.clone(), &device),
        }
    }
    let flex_after =
        sgd_step_on::<Autodiff<Flex>>(load_of(&record, &config), batch(&images, &targets));
    let nd_after =
        sgd_step_on::<Autodiff<NdArray>>(load_of(&record, &config), batch(&images, &targets));
    let before = load_of::<Flex>(&record, &config).feature_values();
    let (a, b) = (flex_after.feature_values(), nd_after.feature_values());
    let largest = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max)
    };
    let (worst, moved) = (largest(&a, &b), largest(&a, &before));
    eprintln!("imagenet, after one SGD step: weights differ by {worst:e}, moved by {moved:e}");
    assert!(
        moved > 10.0 * WEIGHT_TOLERANCE,
        "the step must move the weights: {moved}"
    );
    assert!(worst <= WEIGHT_TOLERANCE, "{worst}");
}
