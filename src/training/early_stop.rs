//! `--early-stop-patience`: burn-train's early-stopping hook (`EarlyStoppingStrategy`), stopping
//! after `patience` epochs without a lower validation loss, with the epochs of an interrupted
//! run before it resumed counted as in an uninterrupted run. Not Burn's
//! `MetricEarlyStoppingStrategy`, which reads the metric store before it holds the epoch's
//! last validation batches (see [`EpochLog::test_loss`]): a run with a constant validation
//! loss was seen to "improve".

use std::sync::{Arc, Mutex};

use burn::train::EarlyStoppingStrategy;
use burn::train::metric::store::EventStoreClient;

use super::best::Best;
use super::epochs::{EpochLog, WAIT_FOR_TEST_LOSS};

/// The strategy of one run.
#[derive(Clone)]
pub struct EarlyStopping {
    patience: usize,
    best: Best,
    log: EpochLog,
    stopped: Arc<Mutex<Option<usize>>>,
}

impl EarlyStopping {
    /// Stops after `patience` epochs without a lower mean validation loss than the best of
    /// `earlier` (epoch, loss) and of the epochs `log` receives.
    pub fn new(patience: usize, earlier: &[(usize, f64)], log: EpochLog) -> Self {
        let mut stopping = Self {
            patience,
            best: Best::default(),
            log,
            stopped: Arc::default(),
        };
        for &(epoch, loss) in earlier {
            stopping.saw(epoch, loss);
        }
        stopping
    }

    /// The epoch after which it stopped the run, if it did.
    pub fn stopped(&self) -> Option<usize> {
        *self.stopped.lock().expect("early-stop state poisoned")
    }

    /// Takes `epoch`'s loss into account; whether the run should stop.
    fn saw(&mut self, epoch: usize, loss: f64) -> bool {
        if self.best.offer(epoch, loss) {
            return false;
        }
        epoch - self.best.epoch().unwrap_or(epoch) >= self.patience
    }
}

impl EarlyStoppingStrategy for EarlyStopping {
    fn should_stop(&mut self, epoch: usize, _: &EventStoreClient) -> bool {
        let Some(loss) = self.log.test_loss(epoch, WAIT_FOR_TEST_LOSS) else {
            eprintln!("warning: no validation loss for epoch {epoch}; early stopping skips it");
            return false;
        };
        let stop = self.saw(epoch, loss);
        if stop {
            *self.stopped.lock().expect("early-stop state poisoned") = Some(epoch);
        }
        stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_epochs_without_a_lower_loss() {
        let mut s = EarlyStopping::new(2, &[], EpochLog::default());
        let stops: Vec<bool> = [(1, 1.0), (2, 0.9), (3, 0.9), (4, 0.95), (5, 0.91)]
            .into_iter()
            .map(|(e, l)| s.saw(e, l))
            .collect();
        assert_eq!(stops, [false, false, false, true, true]);
        assert_eq!(s.best.epoch(), Some(2));
    }

    #[test]
    fn earlier_epochs_count_as_in_an_uninterrupted_run() {
        let mut resumed = EarlyStopping::new(2, &[(1, 0.5), (2, 0.7)], EpochLog::default());
        assert!(resumed.saw(3, 0.6), "two epochs since the best, epoch 1");
    }
}
