//! The metric history of a run, read from burn-train's logs or gathered while training.

use std::path::Path;

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

/// Parses one `Loss.log` / `Accuracy.log` line: `value,count` or `value`.
fn parse_entry(line: &str) -> Option<(f64, usize)> {
    match line.split_once(',') {
        Some((value, count)) => Some((value.parse().ok()?, count.parse().ok()?)),
        None => Some((line.parse().ok()?, 1)),
    }
}

/// The batches logged for one split of one epoch: sizes and accuracies from `Accuracy.log`
/// (percent, with the batch size), losses from `Loss.log`. Unparsable tails (a run killed
/// while writing) are dropped.
fn read_batches(dir: &Path) -> Vec<Batch> {
    let read = |name: &str| -> Vec<(f64, usize)> {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_default()
            .lines()
            .map_while(parse_entry)
            .collect()
    };
    read("Accuracy.log")
        .into_iter()
        .zip(read("Loss.log"))
        .map(|((accuracy, examples), (loss, _))| Batch {
            examples,
            loss,
            accuracy: accuracy / 100.0,
        })
        .collect()
}

/// Every epoch logged in the run directory `dir`, in order, up to the first missing one.
pub fn read_history(dir: &Path) -> Vec<EpochHistory> {
    (1..)
        .map_while(|epoch| {
            let train_dir = dir.join(format!("train/epoch-{epoch}"));
            train_dir.is_dir().then(|| EpochHistory {
                epoch,
                train: read_batches(&train_dir),
                test: read_batches(&dir.join(format!("valid/epoch-{epoch}"))),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(examples: usize, loss: f64, accuracy: f64) -> Batch {
        Batch {
            examples,
            loss,
            accuracy,
        }
    }

    #[test]
    fn means_are_weighted_by_examples() {
        let e = EpochHistory {
            epoch: 1,
            train: vec![batch(3, 1.0, 1.0), batch(1, 3.0, 0.0)],
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
            train: (0..10).map(|i| batch(1, i as f64, 0.0)).collect(),
            test: vec![],
        };
        let s = e.train_samples();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0], (1.2, 0.5, 0.0)); // mean of 0, 1
        assert_eq!(s[4], (2.0, 4.5, 0.0)); // mean of 0..=9
    }

    #[test]
    fn reads_burn_logs_and_stops_at_the_first_missing_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let write = |split: &str, epoch: usize, acc: &str, loss: &str| {
            let d = dir.path().join(format!("{split}/epoch-{epoch}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("Accuracy.log"), acc).unwrap();
            std::fs::write(d.join("Loss.log"), loss).unwrap();
        };
        write("train", 1, "50,2\n100,1\n", "2.0,1\n1.0,1\n");
        write("valid", 1, "25,4\n", "1.5,1\n");
        write("train", 2, "0,2\n50,2\n5,", "2.5,1\n2.4,1\n2.3,1\n");
        write("train", 4, "0,2\n", "2.5,1\n");
        let h = read_history(dir.path());
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].train, vec![batch(2, 2.0, 0.5), batch(1, 1.0, 1.0)]);
        assert_eq!(h[0].test_totals().unwrap().accuracy, 0.25);
        assert_eq!(
            h[1].train.len(),
            2,
            "an unparsable tail is dropped, not fatal"
        );
        assert!(h[1].test.is_empty());
    }
}
