//! AlexNet wrapped with the cross-entropy loss, as burn-train's training and validation steps.

use alexnet_model::AlexNet;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};

use crate::data::FashionMnistBatch;

/// The network plus the loss: what the Learner trains.
#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    /// The AlexNet being trained; its record is what inference loads.
    pub net: AlexNet<B>,
}

impl<B: Backend> Classifier<B> {
    /// Wraps a network.
    pub fn new(net: AlexNet<B>) -> Self {
        Self { net }
    }

    /// Logits, mean cross-entropy loss (as `nn.CrossEntropyLoss()`) and targets of one batch.
    pub fn forward_classification(&self, batch: FashionMnistBatch<B>) -> ClassificationOutput<B> {
        let logits = self.net.forward(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl<B: AutodiffBackend> TrainStep for Classifier<B> {
    type Input = FashionMnistBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: FashionMnistBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let output = self.forward_classification(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> InferenceStep for Classifier<B> {
    type Input = FashionMnistBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: FashionMnistBatch<B>) -> ClassificationOutput<B> {
        self.forward_classification(batch)
    }
}
