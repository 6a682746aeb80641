//! Compiling and tuning a GPU backend's kernels ahead of the work: one pass of each step
//! `train`, `eval`, `infer` and `bench` run, at each batch size they meet (the last partial
//! batch of an epoch included), with the time it took and the autotune results it added to the
//! kernel cache.

use std::path::Path;
use std::time::Instant;

use alexnet_model::AlexNetConfig;
use anyhow::Result;
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, ElementConversion, Int, Tensor};
use serde::Serialize;

use super::classifier::Classifier;
use super::optimizer::{Algorithm, Sgd};
use crate::backend;
use crate::data::ImageBatch;
use crate::run::TrainingConfig;

/// One step to compile and tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Forward, backward and SGD update of `batch` images.
    Train(usize),
    /// The loss and predicted classes of `batch` images (training's test pass, `eval`).
    Test(usize),
    /// Class probabilities of `batch` images (`infer`, `bench`).
    Infer(usize),
}

impl Phase {
    /// `train step, batch 128` and the like.
    pub fn describe(&self) -> String {
        match self {
            Self::Train(b) => format!("train step, batch {b}"),
            Self::Test(b) => format!("test pass, batch {b}"),
            Self::Infer(b) => format!("inference, batch {b}"),
        }
    }

    /// The phases a training run meets: the full and last batches of the training and test
    /// sets.
    pub fn of_training(batch: usize, train_len: usize, test_len: usize) -> Vec<Phase> {
        let train = batch_sizes(train_len, batch).into_iter().map(Phase::Train);
        let test = batch_sizes(test_len, batch).into_iter().map(Phase::Test);
        train.chain(test).collect()
    }
}

/// The sizes of the batches of a `len`-image epoch: full ones, then a partial last one.
fn batch_sizes(len: usize, batch: usize) -> Vec<usize> {
    let mut sizes = vec![batch.min(len)];
    if len > batch && !len.is_multiple_of(batch) {
        sizes.push(len % batch);
    }
    sizes
}

/// What one phase cost.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTiming {
    /// The phase, as [`Phase::describe`] says it.
    pub phase: String,
    /// Wall seconds, the device synchronised and the result read back.
    pub seconds: f64,
    /// Autotune results this phase added to the kernel cache.
    pub tuned_keys: usize,
}

/// Runs each phase once on a fresh network of `config` with its optimizer, calling `report`
/// after each.
pub fn warm_up<B: AutodiffBackend>(
    device: &B::Device,
    config: &TrainingConfig,
    phases: &[Phase],
    kernel_cache: Option<&Path>,
    mut report: impl FnMut(&PhaseTiming),
) -> Result<Vec<PhaseTiming>> {
    let model_config = &config.model;
    let mut model = Classifier::new(config.model.try_init::<B>(device)?);
    let mut optimizer = <Sgd<B> as Algorithm<B>>::adaptor(&config.optimizer);
    let keys = || kernel_cache.map_or(0, backend::count_tuned_keys);
    let mut timings = Vec::new();
    for phase in phases {
        let before = keys();
        let start = Instant::now();
        match *phase {
            Phase::Train(batch) => {
                let output =
                    model.forward_classification(random_batch::<B>(batch, model_config, device));
                let _: f64 = output.loss.clone().into_scalar().elem();
                let grads = GradientsParams::from_grads(output.loss.backward(), &model);
                model = optimizer.step(config.lr, model, grads);
            }
            Phase::Test(batch) => {
                let valid = model.valid();
                let output =
                    valid.forward_classification(random_batch(batch, model_config, device));
                let _: f64 = output.loss.into_scalar().elem();
                let _ = output.output.argmax(1).into_data();
            }
            Phase::Infer(batch) => {
                let images = random_batch::<B::InnerBackend>(batch, model_config, device).images;
                let _ = softmax(model.valid().net.forward(images), 1).into_data();
            }
        }
        B::sync(device)?;
        let timing = PhaseTiming {
            phase: phase.describe(),
            seconds: start.elapsed().as_secs_f64(),
            tuned_keys: keys().saturating_sub(before),
        };
        report(&timing);
        timings.push(timing);
    }
    Ok(timings)
}

/// Uniform pixels and cycling labels for `model`'s input and classes: what the kernels see
/// does not depend on the values.
pub fn random_batch<B: Backend>(
    batch: usize,
    model: &AlexNetConfig,
    device: &B::Device,
) -> ImageBatch<B> {
    let (side, channels) = (model.image_size, model.in_channels);
    let labels: Vec<i32> = (0..batch).map(|i| (i % model.num_classes) as i32).collect();
    ImageBatch {
        images: Tensor::random(
            [batch, channels, side, side],
            Distribution::Uniform(0.0, 1.0),
            device,
        ),
        targets: Tensor::<B, 1, Int>::from_ints(labels.as_slice(), device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_meets_full_and_last_partial_batches() {
        assert_eq!(
            Phase::of_training(128, 60_000, 10_000),
            [
                Phase::Train(128),
                Phase::Train(96),
                Phase::Test(128),
                Phase::Test(16)
            ]
        );
        assert_eq!(
            Phase::of_training(32, 256, 64),
            [Phase::Train(32), Phase::Test(32)]
        );
        assert_eq!(
            Phase::of_training(128, 100, 10),
            [Phase::Train(100), Phase::Test(10)],
            "a set smaller than one batch is one batch of its own size"
        );
    }
}
