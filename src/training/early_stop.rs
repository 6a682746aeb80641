//! `--early-stop-patience`: burn-train's early-stopping hook (`EarlyStoppingStrategy`), stopping
//! after `patience` epochs without a lower validation loss, with the epochs of an interrupted
//! run before it resumed counted as in an uninterrupted run.
//!
//! Burn's `MetricEarlyStoppingStrategy` reads the metric store, which the event processor's
//! thread may not yet have fed with an epoch's last validation batches when the Learner asks
//! (it then compares a partial mean: a run with a constant validation loss was seen to
//! "improve"). This one waits for the epoch's complete test metrics in the [`EpochLog`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::train::EarlyStoppingStrategy;
use burn::train::metric::store::EventStoreClient;

use super::EpochLog;

/// How long the strategy waits for an epoch's test metrics before letting the run go on.
const WAIT: Duration = Duration::from_secs(120);

/// The strategy of one run.
#[derive(Clone)]
pub struct EarlyStopping {
    patience: usize,
    /// The epoch with the lowest validation loss so far, and that loss.
    best: Option<(usize, f64)>,
    log: EpochLog,
    stopped: Arc<Mutex<Option<usize>>>,
}

impl EarlyStopping {
    /// Stops after `patience` epochs without a lower mean validation loss than the best of
    /// `earlier` (epoch, loss) and of the epochs `log` receives.
    pub fn new(patience: usize, earlier: &[(usize, f64)], log: EpochLog) -> Self {
        let mut stopping = Self {
            patience,
            best: None,
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
        match self.best {
            Some((_, best)) if loss >= best => {}
            _ => {
                self.best = Some((epoch, loss));
                return false;
            }
        }
        let best_epoch = self.best.map_or(epoch, |b| b.0);
        epoch - best_epoch >= self.patience
    }

    /// `epoch`'s validation loss once its test pass is accounted for.
    fn test_loss(&self, epoch: usize) -> Option<f64> {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if let Some(e) = self.log.epochs().iter().find(|e| e.epoch == epoch) {
                return Some(e.test_loss);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl EarlyStoppingStrategy for EarlyStopping {
    fn should_stop(&mut self, epoch: usize, _: &EventStoreClient) -> bool {
        let Some(loss) = self.test_loss(epoch) else {
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
        assert_eq!(s.best, Some((2, 0.9)));
    }

    #[test]
    fn earlier_epochs_count_as_in_an_uninterrupted_run() {
        let mut resumed = EarlyStopping::new(2, &[(1, 0.5), (2, 0.7)], EpochLog::default());
        assert!(resumed.saw(3, 0.6), "two epochs since the best, epoch 1");
    }
}
