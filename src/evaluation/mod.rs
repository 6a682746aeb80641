//! `alexnet eval`: loss, accuracy, per-class accuracy, precision and F1, the most confused pairs
//! and the confusion matrix of a checkpoint.

mod confusion;

use std::path::Path;

use alexnet_model::AlexNet;
use anyhow::{Context, Result};
use burn::data::dataloader::DataLoaderBuilder;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::ElementConversion;
use burn::tensor::backend::Backend;
use serde::Serialize;

pub use confusion::{ConfusionMatrix, macro_average};

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
    /// `correct / total` (the class's recall), absent when the split has no example of it.
    pub accuracy: Option<f64>,
    /// Share of the predictions of this class that are right; absent if never predicted.
    pub precision: Option<f64>,
    /// Harmonic mean of precision and recall.
    pub f1: Option<f64>,
}

/// A pair of classes the network mixes up.
#[derive(Debug, Clone, Serialize)]
pub struct ConfusedPair {
    /// The true class.
    pub truth: &'static str,
    /// The class predicted instead.
    pub predicted: &'static str,
    /// How many times.
    pub count: u64,
}

/// Means over the classes, each class weighing the same (undefined values count as 0).
#[derive(Debug, Clone, Serialize)]
pub struct MacroAverages {
    /// Mean precision.
    pub precision: f64,
    /// Mean recall.
    pub recall: f64,
    /// Mean F1.
    pub f1: f64,
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
    /// Accuracy (recall), precision and F1 per class, in label order.
    pub per_class: Vec<ClassAccuracy>,
    /// Macro averages of precision, recall and F1.
    pub macro_avg: MacroAverages,
    /// The five most frequent confusions, largest first.
    pub most_confused: Vec<ConfusedPair>,
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
        let (precision, recall, f1) = (
            confusion.precision(),
            confusion.per_class_accuracy(),
            confusion.f1(),
        );
        let (correct, support) = (confusion.correct(), confusion.support());
        let per_class = (0..confusion.classes())
            .map(|c| ClassAccuracy {
                label: CLASS_NAMES[c],
                correct: correct[c],
                total: support[c],
                accuracy: recall[c],
                precision: precision[c],
                f1: f1[c],
            })
            .collect();
        let macro_avg = MacroAverages {
            precision: macro_average(&precision).unwrap_or(0.0),
            recall: macro_average(&recall).unwrap_or(0.0),
            f1: macro_average(&f1).unwrap_or(0.0),
        };
        let most_confused = confusion
            .most_confused(5)
            .into_iter()
            .map(|(t, p, count)| ConfusedPair {
                truth: CLASS_NAMES[t],
                predicted: CLASS_NAMES[p],
                count,
            })
            .collect();
        Self {
            checkpoint: checkpoint.display().to_string(),
            split,
            examples: confusion.total(),
            loss,
            accuracy: confusion.accuracy(),
            per_class,
            macro_avg,
            most_confused,
            classes: CLASS_NAMES.to_vec(),
            confusion,
        }
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} on the {} split ({} images)\nloss {:.3}, accuracy {:.3}\n\nper class:\n  {:<12} {:>9} {:>9} {:>9}\n",
            self.checkpoint,
            self.split,
            self.examples,
            self.loss,
            self.accuracy,
            "",
            "accuracy",
            "precision",
            "F1"
        );
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |a| format!("{a:.3}"));
        for c in &self.per_class {
            out.push_str(&format!(
                "  {:<12} {:>9} {:>9} {:>9}  ({}/{})\n",
                c.label,
                cell(c.accuracy),
                cell(c.precision),
                cell(c.f1),
                c.correct,
                c.total
            ));
        }
        let m = &self.macro_avg;
        out.push_str(&format!(
            "  {:<12} {:>9.3} {:>9.3} {:>9.3}  (macro average: recall, precision, F1)\n",
            "", m.recall, m.precision, m.f1
        ));
        out.push_str("\nmost confused (true -> predicted):\n");
        for pair in &self.most_confused {
            out.push_str(&format!(
                "  {:<12} -> {:<12} {}\n",
                pair.truth, pair.predicted, pair.count
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
