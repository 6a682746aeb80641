//! Progress inside an epoch for a run without the dashboard (stdout piped, `--no-dashboard`): a
//! 224 px epoch on a CPU takes half an hour, which a log should not pass in silence.

use std::io::Write;
use std::time::Instant;

use crate::human::{duration, thousands};
use crate::run::EpochHistory;

/// How often a progress line is printed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cadence {
    /// At most once per this many seconds (the default: 60).
    Seconds(f64),
    /// After every this many training batches (`--log-every N`).
    Batches(usize),
}

/// Prints `epoch 2/10: 12,800/60,000 images, loss 1.934, train acc 0.301, 35.4 examples/sec,
/// epoch ends in 22 min`.
pub struct ProgressLines {
    total_epochs: usize,
    train_images: usize,
    test_images: usize,
    cadence: Cadence,
    last_line: Instant,
}

impl ProgressLines {
    /// Lines for a run of `total_epochs` over `train_images` (and `test_images` to test).
    pub fn new(
        total_epochs: usize,
        (train_images, test_images): (usize, usize),
        cadence: Cadence,
    ) -> Self {
        Self {
            total_epochs,
            train_images,
            test_images,
            cadence,
            last_line: Instant::now(),
        }
    }

    /// After a training batch of the running epoch, `train_seconds` into its training pass.
    pub fn after_batch(&mut self, epoch: &EpochHistory, train_seconds: f64) {
        let due = match self.cadence {
            Cadence::Seconds(s) => self.last_line.elapsed().as_secs_f64() >= s,
            Cadence::Batches(n) => epoch.train.len().is_multiple_of(n.max(1)),
        };
        if !due {
            return;
        }
        let seen: usize = epoch.train.iter().map(|b| b.examples).sum();
        if seen >= self.train_images {
            return;
        }
        self.last_line = Instant::now();
        let line = self.line(epoch, train_seconds);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn line(&self, epoch: &EpochHistory, train_seconds: f64) -> String {
        let totals = epoch.train_totals();
        let rate = totals.examples as f64 / train_seconds.max(1e-9);
        // The test pass runs forward only, about three times as fast as training.
        let left = (self.train_images - totals.examples) as f64 / rate
            + self.test_images as f64 / (3.0 * rate);
        format!(
            "epoch {}/{}: {}/{} images, loss {:.3}, train acc {:.3}, {rate:.1} examples/sec, \
             epoch ends in {}",
            epoch.epoch,
            self.total_epochs,
            thousands(totals.examples),
            thousands(self.train_images),
            totals.loss,
            totals.accuracy,
            duration(left)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Batch;

    #[test]
    fn a_line_shows_the_running_epoch() {
        let lines = ProgressLines::new(10, (60_000, 10_000), Cadence::Batches(2));
        let epoch = EpochHistory {
            epoch: 2,
            train: (0..100).map(|_| Batch::new(128, 1.934, 0.301)).collect(),
            test: Vec::new(),
        };
        let line = lines.line(&epoch, 12_800.0 / 35.4);
        assert!(
            line.starts_with(
                "epoch 2/10: 12,800/60,000 images, loss 1.934, train acc 0.301, 35.4 examples/sec, \
                 epoch ends in "
            ),
            "{line}"
        );
        // (47,200 + 10,000 / 3) / 35.4 s = 24 min.
        assert!(line.ends_with("in 24 min"), "{line}");
    }
}
