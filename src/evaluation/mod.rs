//! `alexnet eval`: loss, accuracy, per-class accuracy and the confusion matrix of a checkpoint.

mod confusion;

use std::path::Path;

use alexnet_model::AlexNet;
use anyhow::{Context, Result};
use burn::data::dataloader::DataLoaderBuilder;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::ElementConversion;
use burn::tensor::backend::Backend;
use serde::Serialize;

pub use confusion::ConfusionMatrix;

use crate::data::{CLASS_NAMES, FashionMnist, FashionMnistBatcher, NUM_CLASSES, Split};

/// Accuracy within one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassAccuracy {
    /// Class name.
    pub label: &'static str,
    /// Correct predictions.
    pub correct: u64,
    /// Examples of this class.
    pub total: u64,
    /// `correct / total`, absent when the split has no example of the class.
    pub accuracy: Option<f64>,
}

/// The result of evaluating one record on one split.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The record evaluated.
    pub checkpoint: String,
    /// `test` or `train`.
    pub split: Split,
    /// Examples evaluated.
    pub examples: u64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Overall accuracy.
    pub accuracy: f64,
    /// Accuracy per class, in label order.
    pub per_class: Vec<ClassAccuracy>,
    /// The class names, in label order (the confusion matrix's rows and columns).
    pub classes: Vec<&'static str>,
    /// Rows: true class; columns: predicted class.
    pub confusion: ConfusionMatrix,
}

/// Runs `net` over `data` in batches, accumulating the loss and the confusion matrix.
pub fn evaluate<B: Backend>(
    net: &AlexNet<B>,
    data: FashionMnist,
    image_size: usize,
    batch_size: usize,
    device: &B::Device,
) -> (f64, ConfusionMatrix) {
    let loader = DataLoaderBuilder::new(FashionMnistBatcher::new(image_size))
        .batch_size(batch_size)
        .num_workers(1)
        .set_device(device.clone())
        .build(data);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut confusion = ConfusionMatrix::new(NUM_CLASSES);
    let mut loss_sum = 0.0;
    for batch in loader.iter() {
        let logits = net.forward(batch.images);
        let n = batch.targets.dims()[0];
        let loss = loss_fn.forward(logits.clone(), batch.targets.clone());
        loss_sum += loss.into_scalar().elem::<f64>() * n as f64;
        let predicted: Vec<i64> = logits
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .to_vec()
            .expect("ints");
        let truth: Vec<i64> = batch
            .targets
            .into_data()
            .convert::<i64>()
            .to_vec()
            .expect("ints");
        for (t, p) in truth.iter().zip(&predicted) {
            confusion.add(*t as usize, *p as usize);
        }
    }
    (loss_sum / confusion.total().max(1) as f64, confusion)
}

impl Evaluation {
    /// Summarises a loss and confusion matrix.
    pub fn new(checkpoint: &Path, split: Split, loss: f64, confusion: ConfusionMatrix) -> Self {
        let per_class = confusion
            .correct()
            .into_iter()
            .zip(confusion.support())
            .zip(confusion.per_class_accuracy())
            .zip(CLASS_NAMES)
            .map(|(((correct, total), accuracy), label)| ClassAccuracy {
                label,
                correct,
                total,
                accuracy,
            })
            .collect();
        Self {
            checkpoint: checkpoint.display().to_string(),
            split,
            examples: confusion.total(),
            loss,
            accuracy: confusion.accuracy(),
            per_class,
            classes: CLASS_NAMES.to_vec(),
            confusion,
        }
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} on the {} split ({} images)\nloss {:.3}, accuracy {:.3}\n\nper-class accuracy:\n",
            self.checkpoint, self.split, self.examples, self.loss, self.accuracy
        );
        for c in &self.per_class {
            let acc = c
                .accuracy
                .map_or("  -  ".to_string(), |a| format!("{a:.3}"));
            out.push_str(&format!(
                "  {:<12} {acc}  ({}/{})\n",
                c.label, c.correct, c.total
            ));
        }
        out.push_str("\nconfusion matrix (rows: true class, columns: predicted class 0-9):\n");
        out.push_str(&format!("  {:<15}", ""));
        for p in 0..self.confusion.classes() {
            out.push_str(&format!("{p:>6}"));
        }
        out.push('\n');
        for (t, row) in self.confusion.counts().iter().enumerate() {
            out.push_str(&format!("  {t} {:<13}", self.classes[t]));
            for count in row {
                out.push_str(&format!("{count:>6}"));
            }
            out.push('\n');
        }
        out
    }

    /// Writes the report as JSON to `path`.
    pub fn save_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("evaluation serialises");
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }
}
