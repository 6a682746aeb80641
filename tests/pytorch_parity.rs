//! Parity with d2l's PyTorch network, against fixtures that `reference/pytorch/parity.py`
//! computed with the chapter's network in `reference/pytorch/d2l_alexnet.py`, in float64
//! (committed; no PyTorch needed here). Both sides build the same weights from a formula, bit
//! for bit, at d2l's 224 px, and this side loads them through `alexnet import`'s reader from a PyTorch-layout state dict. What
//! is compared: the resize of real test images, logits, the mean cross-entropy, one SGD step
//! with dropout off (gradients and updated weights, through `alexnet export`'s writer), and
//! dropout's convention.

#![cfg(feature = "flex")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use alexnet::data::{FashionMnistBatcher, FashionMnistItem};
use alexnet::interop;
use alexnet::training::Classifier;
use alexnet_model::{AlexNet, AlexNetConfig};
use burn::backend::{Autodiff, Flex};
use burn::data::dataloader::batcher::Batcher;
use burn::nn::DropoutConfig;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use common::state_dict::{self, Entry};
use serde_json::Value;

/// Logits of order 1 after eight layers of f32 sums in another order than the float64
/// reference (our Winograd conv2 and im2col GEMMs, Burn's matmul): 1e-4 of the largest logit.
const LOGIT_REL_TOLERANCE: f64 = 1e-4;
/// The mean cross-entropy: the logits' error, averaged.
const LOSS_TOLERANCE: f64 = 1e-5;
/// The reference gradients are PyTorch's in float64. Each tensor's gradient may be as far
/// from them as PyTorch's own float32 step is (the fixture measures that: from 5e-7 of the
/// largest gradient at fc3 to 0.11 at fc2), and never needs to be closer than f32 noise over
/// sums of about 10^4 terms (sqrt(10^4) * 6e-8 = 6e-6).
const GRAD_NOISE_FLOOR: f64 = 1e-5;
/// One f32 rounding of a weight of order 0.1-1.
const WEIGHT_ROUNDING: f64 = 1e-7;

fn fixture() -> &'static Value {
    static FIXTURE: OnceLock<Value> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let text = include_str!("fixtures/pytorch_parity.json");
        serde_json::from_str(text).expect("the fixture is JSON")
    })
}

fn resize() -> usize {
    fixture()["resize"].as_u64().unwrap() as usize
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// The formula weights at the fixture's size (what PyTorch's `save_file` would write for them).
fn formula_state() -> &'static Vec<Entry> {
    static STATE: OnceLock<Vec<Entry>> = OnceLock::new();
    STATE.get_or_init(|| state_dict::formula::<Flex>(resize()))
}

/// The formula weights as a safetensors state dict, made once per test process.
fn weights_file() -> &'static Path {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("formula.safetensors");
        state_dict::write(&path, formula_state(), None);
        (dir, path)
    });
    path
}

fn config(dropout: f64) -> AlexNetConfig {
    AlexNetConfig::new()
        .with_image_size(resize())
        .with_dropout(dropout)
}

/// The formula weights on backend `B`, read as `alexnet import` reads a state dict.
fn formula_net<B: Backend>(dropout: f64) -> AlexNet<B> {
    let device = Default::default();
    interop::import_net::<B>(weights_file(), &config(dropout), None, &device)
        .unwrap()
        .0
}

fn fixture_items() -> Vec<FashionMnistItem> {
    let labels = floats(&fixture()["labels"]);
    fixture()["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .zip(labels)
        .map(|(pixels, label)| {
            let pixels: Vec<u8> = floats(pixels).into_iter().map(|p| p as u8).collect();
            FashionMnistItem {
                pixels: Arc::from(pixels),
                label: label as u8,
            }
        })
        .collect()
}

#[test]
fn resizing_real_test_images_gives_pils_pixels() {
    let images = FashionMnistBatcher::new(resize()).pixels(&fixture_items());
    let side = resize() * resize();
    let expected = floats(&fixture()["resized_crc32"]);
    for (i, image) in images.chunks(side).enumerate() {
        let bytes: Vec<u8> = image.iter().map(|v| (v * 255.0).round() as u8).collect();
        let mut crc = flate2::Crc::new();
        crc.update(&bytes);
        assert_eq!(f64::from(crc.sum()), expected[i], "image {i}");
    }
}

fn max_abs(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn check_logits_and_loss<B: Backend>(backend: &str) {
    let device = Default::default();
    let net = formula_net::<B>(0.5);
    let batch = FashionMnistBatcher::new(resize()).batch(fixture_items(), &device);
    let logits = net.forward(batch.images);
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits.clone(), batch.targets);
    let ours: Vec<f64> = logits.into_data().convert::<f64>().to_vec().unwrap();
    let theirs: Vec<f64> = fixture()["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(floats)
        .collect();
    let diff: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a - b).collect();
    let rel = max_abs(&diff) / max_abs(&theirs);
    let loss_ours = loss.into_scalar().elem::<f64>();
    let loss_theirs = fixture()["loss"].as_f64().unwrap();
    eprintln!(
        "{backend} vs PyTorch: logits max abs diff {:.2e} (relative {rel:.2e}), loss {loss_ours:.7} \
         vs {loss_theirs:.7}",
        max_abs(&diff)
    );
    assert_eq!(ours.len(), theirs.len());
    assert!(rel <= LOGIT_REL_TOLERANCE, "{backend}: relative {rel:e}");
    assert!((loss_ours - loss_theirs).abs() <= LOSS_TOLERANCE);
}

#[test]
fn logits_and_loss_match_pytorch_on_flex() {
    check_logits_and_loss::<Flex>("flex");
}

#[cfg(feature = "ndarray")]
#[test]
fn logits_and_loss_match_pytorch_on_ndarray() {
    check_logits_and_loss::<burn::backend::NdArray>("ndarray");
}

/// One SGD step at the fixture's learning rate, dropout off, as training takes it.
fn sgd_step<B: AutodiffBackend>() -> AlexNet<B> {
    let device = Default::default();
    let model = Classifier::new(formula_net::<B>(0.0));
    let batch = FashionMnistBatcher::new(resize()).batch(fixture_items(), &device);
    let output = model.forward_classification(batch);
    let grads = GradientsParams::from_grads(output.loss.backward(), &model);
    let lr = fixture()["lr"].as_f64().unwrap();
    SgdConfig::new()
        .init::<B, Classifier<B>>()
        .step(lr, model, grads)
        .net
}

fn check_sgd_step<B: AutodiffBackend>(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("after.safetensors");
    let config = AlexNetConfig::new().with_image_size(resize());
    let classes = alexnet::run::fashion_mnist_classes();
    interop::export_net(&sgd_step::<B>(), (&config, &classes), &exported).unwrap();
    let (exported, _) = state_dict::read(&exported);
    let lr = fixture()["lr"].as_f64().unwrap();
    let (mut worst_grad, mut worst_weight) = (0.0f64, 0.0f64);
    for tensor in formula_state() {
        let before = tensor.values();
        let expected = &fixture()["tensors"][&tensor.key];
        let view = exported.iter().find(|e| e.key == tensor.key).unwrap();
        assert_eq!(view.shape, tensor.shape, "{}", tensor.key);
        let after: Vec<f64> = view.values().into_iter().map(f64::from).collect();
        // The gradient the step applied: (before - after) / lr.
        let grad: Vec<f64> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (f64::from(*b) - a) / lr)
            .collect();
        let scale = expected["grad_max_abs"].as_f64().unwrap();
        let l2 = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        let l2_theirs = expected["grad_l2"].as_f64().unwrap();
        let key = &tensor.key;
        let tolerance = expected["torch_f32_grad_error"]
            .as_f64()
            .unwrap()
            .max(GRAD_NOISE_FLOOR);
        let l2_err = (l2 - l2_theirs).abs() / l2_theirs;
        assert!(
            l2_err <= tolerance,
            "{backend} {key}: gradient L2 norm {l2} vs {l2_theirs} (tolerance {tolerance:.1e})"
        );
        let mut sample_err = 0.0f64;
        for sample in expected["samples"].as_array().unwrap() {
            let s = floats(sample);
            let i = s[0] as usize;
            let grad_err = (grad[i] - s[1]).abs() / scale;
            let weight_err = (after[i] - s[2]).abs();
            assert!(
                grad_err <= tolerance,
                "{backend} {key}[{i}]: gradient {} vs {} (tolerance {tolerance:.1e})",
                grad[i],
                s[1]
            );
            assert!(
                weight_err <= lr * tolerance * scale + WEIGHT_ROUNDING,
                "{backend} {key}[{i}]: weight {} vs {}",
                after[i],
                s[2]
            );
            sample_err = sample_err.max(grad_err);
            worst_weight = worst_weight.max(weight_err);
        }
        worst_grad = worst_grad.max(sample_err);
        eprintln!(
            "{backend} {key}: gradient L2 {l2_err:.1e}, samples {sample_err:.1e} of the largest \
             (tolerance {tolerance:.1e}: PyTorch f32's own error, or f32 noise)"
        );
    }
    eprintln!(
        "{backend} vs PyTorch (float64) after one SGD step: gradient samples within \
         {worst_grad:.2e} of each tensor's largest gradient, updated weights within \
         {worst_weight:.2e}"
    );
}

#[test]
fn one_sgd_step_matches_pytorch_on_flex() {
    check_sgd_step::<Autodiff<Flex>>("flex");
}

#[cfg(feature = "ndarray")]
#[test]
fn one_sgd_step_matches_pytorch_on_ndarray() {
    check_sgd_step::<Autodiff<burn::backend::NdArray>>("ndarray");
}

#[test]
fn dropout_follows_pytorchs_convention() {
    let expected = &fixture()["dropout"];
    let p = expected["p"].as_f64().unwrap();
    let device = Default::default();
    let dropout = DropoutConfig::new(p).init();
    let ones = || Tensor::<Autodiff<Flex>, 1>::ones([200_000], &device);
    // Training (an autodiff backend): zero with probability p, survivors scaled by 1 / (1 - p).
    let kept: Vec<f32> = dropout.forward(ones()).into_data().to_vec().unwrap();
    let survivors: Vec<f64> = floats(&expected["survivor_values"]);
    assert!(
        kept.iter()
            .all(|&v| v == 0.0 || survivors.contains(&f64::from(v))),
        "survivors are exactly {survivors:?}"
    );
    let zeros = kept.iter().filter(|&&v| v == 0.0).count() as f64 / kept.len() as f64;
    // Binomial standard deviation at n = 200,000: 0.0011; five of them.
    assert!((zeros - p).abs() < 0.0056, "zero fraction {zeros}");
    // Inference (no autodiff), what `eval` and `infer` run: the identity.
    let plain = Tensor::<Flex, 1>::ones([1000], &device);
    let out: Vec<f32> = dropout.forward(plain).into_data().to_vec().unwrap();
    assert!(expected["eval_is_identity"].as_bool().unwrap());
    assert!(out.iter().all(|&v| v == 1.0));
}
