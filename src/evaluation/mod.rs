//! `alexnet eval`: loss, accuracy, per-class accuracy, precision and F1, the most confused pairs
//! and the confusion matrix of a checkpoint.

mod confusion;

use std::path::Path;

use alexnet_model::AlexNet;
use anyhow::{Result, bail};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::ElementConversion;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use serde::Serialize;

pub use confusion::{ConfusionMatrix, macro_average};

use crate::data::{BadImages, ImageTransform, LoaderOptions, SplitImages};

/// Accuracy within one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassAccuracy {
    /// Class name.
    pub label: String,
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
    pub truth: String,
    /// The class predicted instead.
    pub predicted: String,
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

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The result of evaluating one record on one split.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The record evaluated.
    pub checkpoint: String,
    /// The images: `test` or `train` (Fashion-MNIST), `val` or `train` (a run's image folder),
    /// or a folder given to `eval`.
    pub split: String,
    /// Examples evaluated.
    pub examples: u64,
    /// Images left out because they could not be read (only when asked to skip them).
    #[serde(skip_serializing_if = "is_zero")]
    pub left_out: usize,
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
    pub classes: Vec<String>,
    /// Rows: true class; columns: predicted class.
    pub confusion: ConfusionMatrix,
}

/// The figures of one pass over a split.
#[derive(Debug, Clone)]
pub struct Scored {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Rows: true class; columns: predicted class.
    pub confusion: ConfusionMatrix,
    /// Images that could not be decoded and were left out (only when asked to skip them).
    pub left_out: usize,
    /// The most confident wrong predictions, most confident first (at most [`MISTAKES`]).
    pub mistakes: Vec<Mistake>,
}

/// How many of the most confident wrong predictions an evaluation keeps for its gallery.
pub const MISTAKES: usize = 16;

/// A wrong prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mistake {
    /// The image's place among the images evaluated (those left out not counted).
    pub position: usize,
    /// Its true class.
    pub truth: usize,
    /// The class predicted.
    pub predicted: usize,
    /// The predicted class's probability.
    pub probability: f32,
    /// The true class's probability.
    pub truth_probability: f32,
}

/// Keeps `mistake` if it is among the [`MISTAKES`] most confident so far.
fn keep(mistakes: &mut Vec<Mistake>, mistake: Mistake) {
    let at = mistakes.partition_point(|m| m.probability >= mistake.probability);
    if at < MISTAKES {
        mistakes.insert(at, mistake);
        mistakes.truncate(MISTAKES);
    }
}

/// Runs `net` over `data` in batches of `batch_size`, read as `transform` says, accumulating
/// the loss and the confusion matrix over `classes` classes. An image that cannot be decoded is
/// an error naming it, unless `skip_bad` leaves it out, counted: leaving it out unsaid would
/// change the figures silently.
pub fn evaluate<B: Backend>(
    net: &AlexNet<B>,
    data: SplitImages,
    (transform, batch_size, classes): (ImageTransform, usize, usize),
    skip_bad: bool,
    device: &B::Device,
) -> Result<Scored> {
    let bad = BadImages::collect();
    let options = LoaderOptions {
        batch_size,
        shuffle: None,
        num_workers: 1,
        transform,
        bad: bad.clone(),
        first_epoch: 1,
        on_epoch: None,
        augment: Default::default(),
    };
    let loader = data.loader::<B>(&options, device);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut confusion = ConfusionMatrix::new(classes);
    let mut loss_sum = 0.0;
    let mut mistakes = Vec::new();
    let mut position = 0;
    for batch in loader.iter() {
        let logits = net.forward(batch.images);
        let n = batch.targets.dims()[0];
        let loss = loss_fn.forward(logits.clone(), batch.targets.clone());
        loss_sum += loss.into_scalar().elem::<f64>() * n as f64;
        let probabilities: Vec<f32> = softmax(logits, 1)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("floats");
        let truth: Vec<i64> = batch
            .targets
            .into_data()
            .convert::<i64>()
            .to_vec()
            .expect("ints");
        for (t, row) in truth.iter().zip(probabilities.chunks_exact(classes)) {
            let (t, p) = (*t as usize, argmax(row));
            confusion.add(t, p);
            if p != t {
                let (probability, truth_probability) = (row[p], row[t]);
                let (truth, predicted) = (t, p);
                let mistake = Mistake {
                    position,
                    truth,
                    predicted,
                    probability,
                    truth_probability,
                };
                keep(&mut mistakes, mistake);
            }
            position += 1;
        }
    }
    let failed = bad.found();
    if let (Some(first), false) = (failed.first(), skip_bad) {
        bail!(
            "{} of the images could not be decoded, e.g. {first}; fix or remove them and \
             evaluate again",
            failed.len()
        );
    }
    Ok(Scored {
        loss: loss_sum / confusion.total().max(1) as f64,
        confusion,
        left_out: failed.len(),
        mistakes,
    })
}

/// The first largest value's index, as `argmax` takes it.
fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
}

impl Evaluation {
    /// Summarises a loss and confusion matrix over `classes` (in label order) of `split`.
    pub fn new(checkpoint: &Path, (split, classes): (String, Vec<String>), scored: Scored) -> Self {
        let Scored {
            loss,
            confusion,
            left_out,
            ..
        } = scored;
        let (precision, recall, f1) = (
            confusion.precision(),
            confusion.per_class_accuracy(),
            confusion.f1(),
        );
        let (correct, support) = (confusion.correct(), confusion.support());
        let per_class = (0..confusion.classes())
            .map(|c| ClassAccuracy {
                label: classes[c].clone(),
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
                truth: classes[t].clone(),
                predicted: classes[p].clone(),
                count,
            })
            .collect();
        Self {
            checkpoint: checkpoint.display().to_string(),
            split,
            examples: confusion.total(),
            left_out,
            loss,
            accuracy: confusion.accuracy(),
            per_class,
            macro_avg,
            most_confused,
            classes,
            confusion,
        }
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let width = self
            .classes
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0)
            .max(12);
        let mut out = format!(
            "{} on the {} split ({} images)\nloss {:.3}, accuracy {:.3}\n\nper class:\n  {:<width$} {:>9} {:>9} {:>9}\n",
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
        if self.left_out > 0 {
            out.push_str(&format!(
                "left out: {} images that could not be read\n",
                self.left_out
            ));
        }
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |a| format!("{a:.3}"));
        for c in &self.per_class {
            out.push_str(&format!(
                "  {:<width$} {:>9} {:>9} {:>9}  ({}/{})\n",
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
            "  {:<width$} {:>9.3} {:>9.3} {:>9.3}  (macro average: recall, precision, F1)\n",
            "", m.recall, m.precision, m.f1
        ));
        out.push_str("\nmost confused (true -> predicted):\n");
        for pair in &self.most_confused {
            out.push_str(&format!(
                "  {:<width$} -> {:<width$} {}\n",
                pair.truth, pair.predicted, pair.count
            ));
        }
        let last = self.confusion.classes().saturating_sub(1);
        out.push_str(&format!(
            "\nconfusion matrix (rows: true class, columns: predicted class 0-{last}):\n"
        ));
        let digits = last.to_string().len();
        out.push_str(&format!("  {:<w$}", "", w = digits + 2 + width));
        for p in 0..self.confusion.classes() {
            out.push_str(&format!("{p:>6}"));
        }
        out.push('\n');
        for (t, row) in self.confusion.counts().iter().enumerate() {
            out.push_str(&format!(
                "  {t:<digits$} {:<w$}",
                self.classes[t],
                w = width + 1
            ));
            for count in row {
                out.push_str(&format!("{count:>6}"));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mistake(position: usize, probability: f32) -> Mistake {
        Mistake {
            position,
            truth: 0,
            predicted: 1,
            probability,
            truth_probability: 1.0 - probability,
        }
    }

    #[test]
    fn the_most_confident_mistakes_are_kept_most_confident_first() {
        let confidence = |position: usize| ((position * 37) % 97) as f32 / 97.0;
        let mut kept = Vec::new();
        // Confidences in a scrambled order, more of them than the gallery holds.
        for position in 0..3 * MISTAKES {
            keep(&mut kept, mistake(position, confidence(position)));
        }
        let mut all: Vec<f32> = (0..3 * MISTAKES).map(confidence).collect();
        all.sort_by(|a, b| b.total_cmp(a));
        let kept: Vec<f32> = kept.iter().map(|m| m.probability).collect();
        assert_eq!(kept, all[..MISTAKES], "the top {MISTAKES}, descending");
    }
}
