//! Parity with PyTorch for both networks, against fixtures that `reference/pytorch/parity.py`
//! computed in float64 (committed; no PyTorch needed here): d2l's network
//! (`reference/pytorch/d2l_alexnet.py`) on real Fashion-MNIST test images at d2l's 224 px, and
//! torchvision's `alexnet()` on real photos through torchvision's own evaluation transform.
//! Both sides build the same weights from a formula, bit for bit, and this side loads them
//! through `alexnet import`'s reader from a PyTorch-layout state dict. What is compared: the
//! resize of real test images, logits, the mean cross-entropy, one SGD step with dropout off
//! (gradients and updated weights, through `alexnet export`'s writer), dropout's convention,
//! the top 5 of JPEG photos, which two JPEG decoders give slightly different pixels, and the
//! Grad-CAM and Grad-CAM++ maps of both networks.

#![cfg(feature = "flex")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use alexnet::data::{FashionMnistBatcher, FashionMnistItem, ImageBatch, ImageTransform};
use alexnet::explain::{GradCam, Method, Target};
use alexnet::interop;
use alexnet::training::Classifier;
use alexnet_model::{AlexNet, AlexNetConfig, Arch, Preprocess};
use burn::backend::{Autodiff, Flex};
use burn::data::dataloader::batcher::Batcher;
use burn::nn::DropoutConfig;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use common::state_dict::{self, Entry};
use serde_json::Value;

/// Logits of order 1 after eight layers of f32 sums in another order than the float64
/// reference (our Winograd conv2 and im2col GEMMs, Burn's matmul): 1e-4 of the largest logit.
const LOGIT_REL_TOLERANCE: f64 = 1e-4;
/// The mean cross-entropy, relative to it where it is above 1: the logits' error, averaged.
const LOSS_TOLERANCE: f64 = 1e-5;
/// The reference gradients are PyTorch's in float64. Each tensor's gradient may be as far
/// from them as PyTorch's own float32 step is (the fixture measures that: from 5e-7 of the
/// largest gradient at fc3 to 0.11 at fc2), and never needs to be closer than f32 noise over
/// sums of about 10^4 terms (sqrt(10^4) * 6e-8 = 6e-6).
const GRAD_NOISE_FLOOR: f64 = 1e-5;
/// One f32 rounding of a weight of order 0.1-1.
const WEIGHT_ROUNDING: f64 = 1e-7;

/// The two networks, each with its fixture.
#[derive(Clone, Copy)]
enum Net {
    /// d2l's network on real Fashion-MNIST test images (`parity.py fixtures`).
    D2l,
    /// torchvision's `alexnet()` on real photos through ImageNet's transform (`parity.py imagenet`).
    Imagenet,
}

impl Net {
    fn fixture(self) -> &'static Value {
        static FIXTURES: [OnceLock<Value>; 2] = [const { OnceLock::new() }; 2];
        FIXTURES[self as usize].get_or_init(|| {
            let text = match self {
                Self::D2l => include_str!("fixtures/pytorch_parity.json"),
                Self::Imagenet => include_str!("fixtures/torchvision_parity.json"),
            };
            serde_json::from_str(text).expect("the fixture is JSON")
        })
    }

    fn config(self, dropout: f64) -> AlexNetConfig {
        match self {
            Self::D2l => AlexNetConfig::new().with_image_size(d2l_resize()),
            Self::Imagenet => AlexNetConfig::for_arch(Arch::Imagenet).with_image_size(PHOTO_SIDE),
        }
        .with_dropout(dropout)
    }

    /// The formula weights (what PyTorch's `save_file` would write for them).
    fn formula_state(self) -> &'static Vec<Entry> {
        static STATES: [OnceLock<Vec<Entry>>; 2] = [const { OnceLock::new() }; 2];
        STATES[self as usize].get_or_init(|| state_dict::formula_of::<Flex>(&self.config(0.5)))
    }

    /// The formula weights as a safetensors state dict, made once per test process.
    fn weights_file(self) -> &'static Path {
        static FILES: [OnceLock<(common::ProcessDir, PathBuf)>; 2] = [const { OnceLock::new() }; 2];
        let (_, path) = &FILES[self as usize].get_or_init(|| {
            let dir = common::ProcessDir::new(&format!("parity-weights-{}", self as usize));
            let path = dir.path().join("formula.safetensors");
            state_dict::write(&path, self.formula_state(), None);
            (dir, path)
        });
        path
    }

    /// The formula weights on backend `B`, read as `alexnet import` reads a state dict.
    fn formula_net<B: Backend>(self, dropout: f64) -> AlexNet<B> {
        let device = Default::default();
        interop::import_net::<B>(self.weights_file(), &self.config(dropout), None, &device)
            .unwrap()
            .0
    }

    /// The fixture's inputs and labels, made as training makes them.
    fn batch<B: Backend>(self, device: &B::Device) -> ImageBatch<B> {
        match self {
            Self::D2l => FashionMnistBatcher::new(d2l_resize()).batch(fixture_items(), device),
            Self::Imagenet => {
                let photos = self.fixture()["photos"].as_array().unwrap();
                let names: Vec<&str> = photos.iter().map(|p| p.as_str().unwrap()).collect();
                let labels: Vec<i64> = floats(&self.fixture()["labels"])
                    .into_iter()
                    .map(|l| l as i64)
                    .collect();
                ImageBatch {
                    images: photo_batch(&names, device),
                    targets: Tensor::from_data(TensorData::new(labels, [names.len()]), device),
                }
            }
        }
    }
}

/// Side of the ImageNet network's input: torchvision's `CenterCrop(224)`.
const PHOTO_SIDE: usize = 224;

/// Photos from tests/fixtures/photos through ImageNet's transform, as `infer` reads them.
fn photo_batch<B: Backend>(names: &[&str], device: &B::Device) -> Tensor<B, 4> {
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
    let transform = ImageTransform::new(PHOTO_SIDE, 3).with_preprocess(Preprocess::Imagenet);
    let mut values = vec![0.0f32; names.len() * transform.values()];
    for (name, out) in names.iter().zip(values.chunks_mut(transform.values())) {
        transform.load_into(&photos.join(name), out).unwrap();
    }
    let shape = [names.len(), 3, PHOTO_SIDE, PHOTO_SIDE];
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn d2l_resize() -> usize {
    Net::D2l.fixture()["resize"].as_u64().unwrap() as usize
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn fixture_items() -> Vec<FashionMnistItem> {
    let fixture = Net::D2l.fixture();
    let labels = floats(&fixture["labels"]);
    fixture["pixels"]
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
    let images = FashionMnistBatcher::new(d2l_resize()).pixels(&fixture_items());
    let side = d2l_resize() * d2l_resize();
    let expected = floats(&Net::D2l.fixture()["resized_crc32"]);
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

fn check_logits_and_loss<B: Backend>(net: Net, backend: &str) {
    let device = Default::default();
    let fixture = net.fixture();
    let batch = net.batch::<B>(&device);
    let logits = net.formula_net::<B>(0.5).forward(batch.images);
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits.clone(), batch.targets);
    let ours: Vec<f64> = logits.into_data().convert::<f64>().to_vec().unwrap();
    let theirs: Vec<f64> = fixture["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(floats)
        .collect();
    let diff: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a - b).collect();
    let rel = max_abs(&diff) / max_abs(&theirs);
    let loss_ours = loss.into_scalar().elem::<f64>();
    let loss_theirs = fixture["loss"].as_f64().unwrap();
    eprintln!(
        "{backend} vs PyTorch: logits max abs diff {:.2e} (relative {rel:.2e}), loss {loss_ours:.7} \
         vs {loss_theirs:.7}",
        max_abs(&diff)
    );
    assert_eq!(ours.len(), theirs.len());
    assert!(rel <= LOGIT_REL_TOLERANCE, "{backend}: relative {rel:e}");
    assert!((loss_ours - loss_theirs).abs() <= LOSS_TOLERANCE * loss_theirs.max(1.0));
}

#[test]
fn logits_and_loss_match_pytorch_on_flex() {
    check_logits_and_loss::<Flex>(Net::D2l, "flex");
}

#[cfg(feature = "ndarray")]
#[test]
fn logits_and_loss_match_pytorch_on_ndarray() {
    check_logits_and_loss::<burn::backend::NdArray>(Net::D2l, "ndarray");
}

#[test]
fn torchvision_logits_and_loss_match_on_flex() {
    check_logits_and_loss::<Flex>(Net::Imagenet, "flex, ImageNet network");
}

#[cfg(feature = "ndarray")]
#[test]
fn torchvision_logits_and_loss_match_on_ndarray() {
    check_logits_and_loss::<burn::backend::NdArray>(Net::Imagenet, "ndarray, ImageNet network");
}

/// One SGD step at the fixture's learning rate, dropout off, as training takes it.
fn sgd_step<B: AutodiffBackend>(net: Net) -> AlexNet<B> {
    let device = Default::default();
    let model = Classifier::new(net.formula_net::<B>(0.0));
    let output = model.forward_classification(net.batch(&device));
    let grads = GradientsParams::from_grads(output.loss.backward(), &model);
    let lr = net.fixture()["lr"].as_f64().unwrap();
    SgdConfig::new()
        .init::<B, Classifier<B>>()
        .step(lr, model, grads)
        .net
}

fn check_sgd_step<B: AutodiffBackend>(net: Net, backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("after.safetensors");
    let classes = match net {
        Net::D2l => alexnet::run::fashion_mnist_classes(),
        Net::Imagenet => alexnet::run::imagenet_classes(),
    };
    interop::export_net(&sgd_step::<B>(net), (&net.config(0.0), &classes), &exported).unwrap();
    let (exported, _) = state_dict::read(&exported);
    let lr = net.fixture()["lr"].as_f64().unwrap();
    let (mut worst_grad, mut worst_weight) = (0.0f64, 0.0f64);
    for tensor in net.formula_state() {
        let before = tensor.values();
        let expected = &net.fixture()["tensors"][&tensor.key];
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
    check_sgd_step::<Autodiff<Flex>>(Net::D2l, "flex");
}

#[cfg(feature = "ndarray")]
#[test]
fn one_sgd_step_matches_pytorch_on_ndarray() {
    check_sgd_step::<Autodiff<burn::backend::NdArray>>(Net::D2l, "ndarray");
}

#[test]
fn one_sgd_step_matches_torchvision_on_flex() {
    check_sgd_step::<Autodiff<Flex>>(Net::Imagenet, "flex, ImageNet network");
}

#[cfg(feature = "ndarray")]
#[test]
fn one_sgd_step_matches_torchvision_on_ndarray() {
    check_sgd_step::<Autodiff<burn::backend::NdArray>>(Net::Imagenet, "ndarray, ImageNet network");
}

/// pytorch-grad-cam's maps from hooks (`parity.py gradcam`), Grad-CAM's and Grad-CAM++'s,
/// against [`GradCam`] on the same weights and images: the top class's and the label's, scaled
/// to [0, 1], within 1e-4, or
/// within twice PyTorch's own float32 error where a ReLU of the classifier that rounding flips
/// makes a map ill-conditioned (up to 2e-2; the fixture measures it per image).
fn check_grad_cam<B: AutodiffBackend>(net: Net, backend: &str) {
    static FIXTURE: OnceLock<Value> = OnceLock::new();
    let fixture = FIXTURE.get_or_init(|| {
        serde_json::from_str(include_str!("fixtures/gradcam.json")).expect("the fixture is JSON")
    });
    let device = Default::default();
    let images = net.batch::<B::InnerBackend>(&device).images;
    let explainer = GradCam::new(net.formula_net::<B>(0.5));
    let key = match net {
        Net::D2l => "d2l",
        Net::Imagenet => "imagenet",
    };
    for target in ["top", "label"] {
        let expected = &fixture[key][target];
        let classes: Vec<usize> = floats(&expected["classes"])
            .into_iter()
            .map(|c| c as usize)
            .collect();
        let asked: Vec<Option<usize>> = match target {
            "top" => vec![None; classes.len()],
            _ => classes.iter().copied().map(Some).collect(),
        };
        let methods = [
            (Method::GradCam, expected),
            (Method::GradCamPlusPlus, &expected["plus_plus"]),
        ];
        for (method, expected) in methods {
            let targets = Target::all(&asked, method);
            let (maps, _) = explainer.explain(images.clone(), &targets).unwrap();
            let f32_errors = floats(&expected["torch_f32_error"]);
            let scaled = expected["scaled"].as_array().unwrap();
            for (i, (map, expected)) in maps.iter().zip(scaled).enumerate() {
                let case = format!("{backend}, {key} {target}, {}, image {i}", method.title());
                assert_eq!(map.class, classes[i], "{case}: class");
                assert_eq!(map.method, method, "{case}: method");
                let theirs: Vec<f64> = expected
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(floats)
                    .collect();
                let ours: Vec<f64> = map.grid.iter().flatten().map(|&v| f64::from(v)).collect();
                assert_eq!(ours.len(), theirs.len(), "{case}: grid size");
                let diff = ours
                    .iter()
                    .zip(&theirs)
                    .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
                let tolerance = (2.0 * f32_errors[i]).max(1e-4f64);
                eprintln!(
                    "{case}: within {diff:.1e} (PyTorch f32: {:.1e})",
                    f32_errors[i]
                );
                assert!(
                    diff <= tolerance,
                    "{case}: differs by {diff:.2e} > {tolerance:.1e}"
                );
            }
        }
    }
}

#[test]
fn grad_cam_matches_pytorch_hooks_on_flex() {
    check_grad_cam::<Autodiff<Flex>>(Net::D2l, "flex");
    check_grad_cam::<Autodiff<Flex>>(Net::Imagenet, "flex");
}

#[cfg(feature = "ndarray")]
#[test]
fn grad_cam_matches_pytorch_hooks_on_ndarray() {
    check_grad_cam::<Autodiff<burn::backend::NdArray>>(Net::D2l, "ndarray");
    check_grad_cam::<Autodiff<burn::backend::NdArray>>(Net::Imagenet, "ndarray");
}

/// JPEG photos: our decoder (the image crate's) and PIL's libjpeg differ by a level here and
/// there, so the logits differ by more than float noise; the top 5 classes must not.
#[test]
fn jpeg_photos_give_torchvisions_top5() {
    let device = Default::default();
    let net = Net::Imagenet.formula_net::<Flex>(0.5);
    for expected in Net::Imagenet.fixture()["jpeg"].as_array().unwrap() {
        let name = expected["photo"].as_str().unwrap();
        let logits = net.forward(photo_batch::<Flex>(&[name], &device));
        let ours: Vec<f64> = logits.into_data().convert::<f64>().to_vec().unwrap();
        let theirs = floats(&expected["logits"]);
        let diff: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a - b).collect();
        let mut ranked: Vec<usize> = (0..ours.len()).collect();
        ranked.sort_by(|&a, &b| ours[b].total_cmp(&ours[a]));
        let top5: Vec<f64> = ranked[..5].iter().map(|&c| c as f64).collect();
        eprintln!(
            "{name}: logits within {:.2e} of torchvision's (relative {:.2e}), top 5 {top5:?}",
            max_abs(&diff),
            max_abs(&diff) / max_abs(&theirs)
        );
        assert_eq!(top5, floats(&expected["top5"]), "{name}: top 5");
    }
}

#[test]
fn dropout_follows_pytorchs_convention() {
    let expected = &Net::D2l.fixture()["dropout"];
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
