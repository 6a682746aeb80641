//! cuDNN on the CUDA backend (`--features cuda,cudnn`). Without a GPU or libcudnn, `backends`
//! must say why cuDNN is unavailable (CI builds this file and runs that test). On a machine
//! with an NVIDIA GPU and cuDNN 9, the ignored test compares the cuDNN path with Burn's own
//! CUDA kernels and with flex on the same weights: `scripts/gpu-check.sh` runs it.

#![cfg(all(feature = "cuda", feature = "cudnn", feature = "flex"))]

mod common;

use alexnet::training::Classifier;
use alexnet_kernels::cudnn::{Library, Mode, library, passes_run, set_mode};
use burn::backend::{Autodiff, Cuda, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use common::same_weights::{initial_record, load, test_batch};
use common::{run, stderr, stdout};

/// Whether this machine's dynamic loader can find libcudnn (the test's own look, not the
/// binary's: the two must agree).
fn libcudnn_on_library_path() -> bool {
    let ldconfig = std::process::Command::new("ldconfig").arg("-p").output();
    let cached =
        ldconfig.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("libcudnn.so"));
    let listed = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    cached
        || std::env::split_paths(&listed).any(|dir| {
            std::fs::read_dir(dir).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("libcudnn.so"))
            })
        })
}

#[test]
fn backends_says_whether_cudnn_loads_and_why_not() {
    let out = run(&["backends", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let cuda = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "cuda")
        .expect("cuda listed");
    let cudnn = &cuda["cudnn"];
    let expected = libcudnn_on_library_path();
    assert_eq!(cudnn["available"], expected, "{cuda}");
    let text = stdout(&run(&["backends"]));
    match expected {
        true => assert!(
            cudnn["version"]
                .as_str()
                .is_some_and(|v| v.starts_with('9'))
        ),
        false => {
            let reason = cudnn["reason"].as_str().unwrap();
            assert!(
                reason.contains("libcudnn") && reason.contains("LD_LIBRARY_PATH"),
                "{reason}"
            );
            assert!(text.contains("cuDNN: unavailable: libcudnn"), "{text}");
        }
    }
}

#[test]
fn the_cudnn_flag_is_checked_like_every_other() {
    let out = run(&["backends", "--cudnn", "fast"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("tf32") && err.contains("fp32") && err.contains("off"),
        "{err}"
    );
}

/// What one network gives on a backend: logits on a batch, its loss, and every parameter after
/// one SGD step (lr 0.01), each flattened.
struct Outcome {
    logits: Vec<f32>,
    loss: f32,
    stepped: Vec<f32>,
}

fn values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().to_vec().unwrap()
}

struct Parameters<'a, B: Backend>(&'a mut Vec<f32>, std::marker::PhantomData<B>);

impl<B: Backend> ModuleVisitor<B> for Parameters<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.extend(values(param.val()));
    }
}

fn outcome<B: AutodiffBackend>(record: &std::path::Path) -> Outcome {
    let device = Default::default();
    let logits = values(load::<B::InnerBackend>(record).forward(test_batch(&device).images));
    let model = Classifier::new(load::<B>(record));
    let output = model.forward_classification(test_batch::<B>(&device));
    let loss = values(output.loss.clone())[0];
    let grads = GradientsParams::from_grads(output.loss.backward(), &model);
    let stepped = SgdConfig::new()
        .init::<B, Classifier<B>>()
        .step(0.01, model, grads)
        .net;
    let mut parameters = Vec::new();
    stepped.visit(&mut Parameters(&mut parameters, std::marker::PhantomData));
    Outcome {
        logits,
        loss,
        stepped: parameters,
    }
}

fn max_abs(values: &[f32]) -> f32 {
    values.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// Burn's CUDA matmuls and both conv paths may use TF32 tensor cores (10-bit mantissas): logits
/// within 1% of the largest, the loss within 0.1%, each weight's SGD update within 2% of the
/// largest update.
fn assert_close(what: &str, ours: &Outcome, reference: &Outcome, start: &[f32]) {
    let logits = max_abs_diff(&ours.logits, &reference.logits);
    assert!(
        logits <= 1e-2 * max_abs(&reference.logits) + 1e-4,
        "{what}: logits differ by {logits:e}"
    );
    let loss = (ours.loss - reference.loss).abs();
    assert!(
        loss <= 1e-3 * reference.loss.abs(),
        "{what}: loss {} vs {}",
        ours.loss,
        reference.loss
    );
    let update = |o: &Outcome| {
        o.stepped
            .iter()
            .zip(start)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>()
    };
    let (mine, theirs) = (update(ours), update(reference));
    let step = max_abs_diff(&mine, &theirs);
    assert!(
        step <= 2e-2 * max_abs(&theirs) + 1e-7,
        "{what}: SGD updates differ by {step:e}"
    );
    eprintln!(
        "{what}: logits {logits:e}, loss {loss:e}, update {step:e} (largest update {:e})",
        max_abs(&theirs)
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU and cuDNN 9: scripts/gpu-check.sh runs it"]
fn cudnn_agrees_with_burns_cuda_kernels_and_with_flex() {
    assert!(
        matches!(library(), Library::Loaded { .. }),
        "{:?}",
        library()
    );
    let tmp = tempfile::tempdir().unwrap();
    let record = initial_record(tmp.path(), 5);
    let mut start = Vec::new();
    load::<Flex>(&record).visit(&mut Parameters(&mut start, std::marker::PhantomData));

    let flex = outcome::<Autodiff<Flex>>(&record);
    set_mode(Mode::Off);
    let before = passes_run();
    let burn_cuda = outcome::<Autodiff<Cuda>>(&record);
    assert_eq!(passes_run(), before, "--cudnn off must not reach cuDNN");
    for (mode, name) in [(Mode::Fp32, "cuDNN fp32"), (Mode::Tf32, "cuDNN tf32")] {
        set_mode(mode);
        let before = passes_run();
        let cudnn = outcome::<Autodiff<Cuda>>(&record);
        let ran: Vec<u64> = passes_run()
            .iter()
            .zip(before)
            .map(|(a, b)| a - b)
            .collect();
        // Five convolutions: inference and training forward, the input gradient of the four
        // whose input has one (not the image's), and every weight gradient.
        assert_eq!(ran, [10, 4, 5], "{name}: passes run through cuDNN");
        assert_close(
            &format!("{name} vs Burn's CUDA"),
            &cudnn,
            &burn_cuda,
            &start,
        );
        assert_close(&format!("{name} vs flex"), &cudnn, &flex, &start);
    }
    assert_close("Burn's CUDA vs flex", &burn_cuda, &flex, &start);
}

#[test]
fn other_backends_keep_burns_convolution() {
    use alexnet_kernels::cudnn::{applies_to, conv2d};
    use burn::nn::conv::Conv2dConfig;
    assert!(applies_to::<Cuda>() && applies_to::<Autodiff<Cuda>>());
    assert!(!applies_to::<Flex>() && !applies_to::<Autodiff<Flex>>());
    let device = Default::default();
    let conv = Conv2dConfig::new([1, 4], [3, 3]).init::<Flex>(&device);
    let x = Tensor::<Flex, 4>::ones([1, 1, 8, 8], &device);
    let handed_back = conv2d(&conv, x.clone()).expect_err("flex is not burn-cuda");
    assert_eq!(values(handed_back), values(x));
}
