//! The metric history of a run: its batches per epoch, read from the metric logs or gathered
//! while training, and d2l's example-weighted means over them.

use serde::Serialize;

/// Training-curve samples per epoch, as d2l's `train_ch6` plots them.
pub const SAMPLES_PER_EPOCH: usize = 5;

/// One batch as logged: its size and its mean loss and accuracy (in `[0, 1]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Batch {
    /// Examples in the batch.
    pub examples: usize,
    /// Mean loss over the batch.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
}

/// Example-weighted means over a sequence of batches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Totals {
    /// Examples seen.
    pub examples: usize,
    /// Mean loss.
    pub loss: f64,
    /// Accuracy.
    pub accuracy: f64,
}

impl Batch {
    /// A batch of `examples` with its mean loss and accuracy.
    pub fn new(examples: usize, loss: f64, accuracy: f64) -> Self {
        Self {
            examples,
            loss,
            accuracy,
        }
    }
}

fn totals(batches: &[Batch]) -> Totals {
    let examples: usize = batches.iter().map(|b| b.examples).sum();
    let weighted = |f: fn(&Batch) -> f64| {
        batches
            .iter()
            .map(|b| f(b) * b.examples as f64)
            .sum::<f64>()
            / examples.max(1) as f64
    };
    Totals {
        examples,
        loss: weighted(|b| b.loss),
        accuracy: weighted(|b| b.accuracy),
    }
}

/// The batches of one epoch; `test` is empty when the epoch did not reach its evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpochHistory {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Training batches in order.
    pub train: Vec<Batch>,
    /// Test batches in order.
    pub test: Vec<Batch>,
}

impl EpochHistory {
    /// Means over the epoch's training batches.
    pub fn train_totals(&self) -> Totals {
        totals(&self.train)
    }

    /// Means over the test batches, if the epoch was evaluated.
    pub fn test_totals(&self) -> Option<Totals> {
        (!self.test.is_empty()).then(|| totals(&self.test))
    }

    /// Running means of the training batches at [`SAMPLES_PER_EPOCH`] points through the epoch,
    /// as `(fractional epoch, loss, accuracy)`; d2l's `epoch + (i + 1) / num_batches`.
    pub fn train_samples(&self) -> Vec<(f64, f64, f64)> {
        let n = self.train.len();
        let mut points: Vec<usize> = (1..=SAMPLES_PER_EPOCH)
            .map(|k| (k * n).div_ceil(SAMPLES_PER_EPOCH))
            .collect();
        points.dedup();
        points
            .into_iter()
            .filter(|&end| end > 0)
            .map(|end| {
                let t = totals(&self.train[..end]);
                (
                    (self.epoch - 1) as f64 + end as f64 / n as f64,
                    t.loss,
                    t.accuracy,
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_are_weighted_by_examples() {
        let e = EpochHistory {
            epoch: 1,
            train: vec![Batch::new(3, 1.0, 1.0), Batch::new(1, 3.0, 0.0)],
            test: vec![],
        };
        let t = e.train_totals();
        assert_eq!(t.examples, 4);
        assert!((t.loss - 1.5).abs() < 1e-12 && (t.accuracy - 0.75).abs() < 1e-12);
        assert_eq!(e.test_totals(), None);
    }

    #[test]
    fn samples_are_running_means_at_fractional_epochs() {
        let e = EpochHistory {
            epoch: 2,
            train: (0..10).map(|i| Batch::new(1, i as f64, 0.0)).collect(),
            test: vec![],
        };
        let s = e.train_samples();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0], (1.2, 0.5, 0.0)); // mean of 0, 1
        assert_eq!(s[4], (2.0, 4.5, 0.0)); // mean of 0..=9
    }
}
