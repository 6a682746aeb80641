//! AlexNet wrapped with the cross-entropy loss, as burn-train's training and validation steps.

use alexnet_model::AlexNet;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};

use super::guard::LossGuard;
use crate::data::ImageBatch;

/// The network plus the loss: what the Learner trains.
#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    /// The AlexNet being trained; its record is what inference loads.
    pub net: AlexNet<B>,
    /// Stops training at a non-finite loss; not part of the record.
    #[module(skip)]
    pub guard: LossGuard,
    /// Label smoothing of the loss (`--label-smoothing`); not part of the record.
    #[module(skip)]
    pub label_smoothing: Option<f32>,
}

impl<B: Backend> Classifier<B> {
    /// Wraps a network.
    pub fn new(net: AlexNet<B>) -> Self {
        Self {
            net,
            guard: LossGuard::default(),
            label_smoothing: None,
        }
    }

    /// Smooths the loss's targets by `alpha` (none at 0, d2l's setting).
    pub fn with_label_smoothing(self, alpha: f64) -> Self {
        let label_smoothing = (alpha > 0.0).then_some(alpha as f32);
        Self {
            label_smoothing,
            ..self
        }
    }

    /// Stops training through `guard` at the first non-finite loss.
    pub fn with_guard(self, guard: LossGuard) -> Self {
        Self { guard, ..self }
    }

    /// Logits, mean cross-entropy loss (as `nn.CrossEntropyLoss()`, with its
    /// `label_smoothing`) and targets of one batch.
    pub fn forward_classification(&self, batch: ImageBatch<B>) -> ClassificationOutput<B> {
        let logits = self.net.forward(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .with_smoothing(self.label_smoothing)
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl<B: AutodiffBackend> TrainStep for Classifier<B> {
    type Input = ImageBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ImageBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let output = self.forward_classification(batch);
        self.guard.check(&output.loss);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> InferenceStep for Classifier<B> {
    type Input = ImageBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ImageBatch<B>) -> ClassificationOutput<B> {
        self.forward_classification(batch)
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use alexnet_model::AlexNetConfig;
    use burn::backend::Flex;
    use burn::tensor::Tensor;

    use crate::run;

    /// Inference loads checkpoints through `run::CheckpointLayout`, without this type: the two
    /// must record the same fields.
    #[test]
    fn checkpoints_load_without_training_code() {
        let dir = tempfile::tempdir().unwrap();
        let device = Default::default();
        let config = AlexNetConfig::new().with_image_size(65);
        let net = config.init::<Flex>(&device);
        let images = Tensor::<Flex, 4>::ones([1, 1, 65, 65], &device);
        let expected = net.forward(images.clone()).into_data();
        let path = dir.path().join("model-1.mpk");
        Classifier::new(net)
            .save_file(&path, &run::recorder())
            .unwrap();
        let fresh = config.init::<Flex>(&device);
        let loaded = run::load_net(&fresh, &path, &device).unwrap();
        loaded
            .forward(images)
            .into_data()
            .assert_eq(&expected, true);
    }
}
