//! Per-epoch accounting: the batches of each epoch as the metric logger receives them, turned
//! into d2l's example-weighted epoch metrics when the epoch's test pass is complete, and handed
//! to the [`EpochSink`]s (the journal and curves, the epoch lines, the caller's log).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::train::Interrupter;

use super::progress::ProgressLines;
use crate::report;
use crate::run::{Batch, EpochHistory, EpochMetrics, JournalEntry, LogSplit, RunDir};

/// How long the strategies that judge an epoch (checkpointing, early stopping) wait for its
/// test metrics before letting the run go on ([`EpochLog::test_loss`]).
pub const WAIT_FOR_TEST_LOSS: std::time::Duration = std::time::Duration::from_secs(120);

/// Receives every finished epoch.
pub trait EpochSink: Send {
    /// Called once per epoch whose training and test passes both completed.
    fn epoch_finished(&mut self, history: &EpochHistory, metrics: &EpochMetrics);
}

/// Batches of the running epoch and the clocks of its two passes.
pub struct EpochAccounting {
    test_examples: usize,
    /// Stopped when the run is: a short test pass is then an interrupted one, otherwise one
    /// whose unreadable images were skipped.
    interrupter: Interrupter,
    current: EpochHistory,
    phase_start: Instant,
    train_seconds: f64,
    sinks: Vec<Box<dyn EpochSink>>,
    progress: Option<ProgressLines>,
    /// Top-3 hits and examples of the running epoch's test pass.
    top3: (f64, usize),
    /// The learning rate of the last training step.
    lr: Option<f64>,
}

impl EpochAccounting {
    /// Accounts for epochs whose test pass covers `test_examples` images, in a run that
    /// `interrupter` stops.
    pub fn new(
        (test_examples, interrupter): (usize, Interrupter),
        sinks: Vec<Box<dyn EpochSink>>,
    ) -> Self {
        Self {
            test_examples,
            interrupter,
            current: EpochHistory::default(),
            phase_start: Instant::now(),
            train_seconds: 0.0,
            sinks,
            progress: None,
            top3: (0.0, 0),
            lr: None,
        }
    }

    /// Also prints progress lines inside each epoch.
    pub fn with_progress(self, progress: ProgressLines) -> Self {
        Self {
            progress: Some(progress),
            ..self
        }
    }

    /// Adds one logged batch of `epoch`: its size and mean loss and accuracy (in `[0, 1]`).
    pub fn add_batch(&mut self, epoch: usize, split: LogSplit, batch: Batch) {
        if epoch != self.current.epoch {
            self.current = EpochHistory {
                epoch,
                ..Default::default()
            };
            self.top3 = (0.0, 0);
        }
        match split {
            LogSplit::Train => {
                self.current.train.push(batch);
                let seconds = self.phase_start.elapsed().as_secs_f64();
                if let Some(progress) = &mut self.progress {
                    progress.after_batch(&self.current, seconds);
                }
            }
            LogSplit::Valid => self.current.test.push(batch),
        }
    }

    /// Adds one test batch's top-3 accuracy (in `[0, 1]`) over `examples` images.
    pub fn add_top3(&mut self, accuracy: f64, examples: usize) {
        self.top3.0 += accuracy * examples as f64;
        self.top3.1 += examples;
    }

    /// The learning rate of the latest training step.
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = Some(lr);
    }

    /// A pass of the running epoch ended. The epoch is finished when its test pass saw every
    /// test image, or ended short without the run being stopped (images that could not be
    /// decoded were skipped); an interrupted test pass also ends, but its epoch is not
    /// finished.
    pub fn end_pass(&mut self, split: LogSplit) {
        match split {
            LogSplit::Train => self.train_seconds = self.phase_start.elapsed().as_secs_f64(),
            LogSplit::Valid => {
                let tested: usize = self.current.test.iter().map(|b| b.examples).sum();
                let complete = tested == self.test_examples || !self.interrupter.should_stop();
                if complete && !self.current.train.is_empty() {
                    self.finish_epoch();
                }
                self.phase_start = Instant::now();
            }
        }
    }

    fn finish_epoch(&mut self) {
        let (train, test) = (self.current.train_totals(), self.current.test_totals());
        let metrics = EpochMetrics {
            epoch: self.current.epoch,
            train_loss: train.loss,
            train_acc: train.accuracy,
            test_loss: test.map_or(f64::NAN, |t| t.loss),
            test_acc: test.map_or(f64::NAN, |t| t.accuracy),
            train_examples: train.examples,
            train_seconds: self.train_seconds,
            epoch_seconds: self.phase_start.elapsed().as_secs_f64(),
            test_top3: (self.top3.1 > 0).then(|| self.top3.0 / self.top3.1 as f64),
            lr: self.lr,
        };
        for sink in &mut self.sinks {
            sink.epoch_finished(&self.current, &metrics);
        }
    }
}

/// Finished epochs, shared between training (which fills it) and its caller.
#[derive(Debug, Clone, Default)]
pub struct EpochLog(Arc<Mutex<Vec<EpochMetrics>>>);

impl EpochLog {
    /// A copy of the epochs finished so far.
    pub fn epochs(&self) -> Vec<EpochMetrics> {
        self.0.lock().expect("epoch log poisoned").clone()
    }

    /// `epoch`'s validation loss once its test pass is accounted for; `None` after `wait`.
    /// burn-train asks its checkpointing and early-stopping strategies about an epoch as soon
    /// as its steps end, while the event processor may still be feeding that epoch's last
    /// validation batches to the metric store (which Burn's metric strategies read, so they can
    /// judge a partial mean); this waits for the complete figure.
    pub fn test_loss(&self, epoch: usize, wait: std::time::Duration) -> Option<f64> {
        let start = std::time::Instant::now();
        loop {
            if let Some(e) = self.epochs().iter().find(|e| e.epoch == epoch) {
                return Some(e.test_loss);
            }
            if start.elapsed() >= wait {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Training throughput over all finished epochs, as d2l's final figure.
    pub fn examples_per_sec(&self) -> f64 {
        let epochs = self.epochs();
        let examples: usize = epochs.iter().map(|e| e.train_examples).sum();
        let seconds: f64 = epochs.iter().map(|e| e.train_seconds).sum();
        examples as f64 / seconds.max(f64::MIN_POSITIVE)
    }
}

impl EpochSink for EpochLog {
    fn epoch_finished(&mut self, _: &EpochHistory, metrics: &EpochMetrics) {
        self.0
            .lock()
            .expect("epoch log poisoned")
            .push(metrics.clone());
    }
}

/// Extends the run's journal and redraws its curves after every epoch. A journal that cannot
/// be written stops training (the epoch would be missing from it); a curve that cannot be drawn
/// is a warning.
pub struct RunFiles {
    run: RunDir,
    device: String,
    total_epochs: usize,
    interrupter: Interrupter,
    /// Every epoch so far: those of earlier processes (a resumed run), then this one's.
    history: Vec<EpochHistory>,
}

impl RunFiles {
    /// Files of `run`, whose first `done` epochs were logged by an earlier process; a failed
    /// journal write stops `interrupter`.
    pub fn new(
        run: &RunDir,
        (device, total_epochs): (String, usize),
        done: usize,
        interrupter: Interrupter,
    ) -> Self {
        Self {
            history: run.read_history().into_iter().take(done).collect(),
            run: run.clone(),
            device,
            total_epochs,
            interrupter,
        }
    }
}

impl EpochSink for RunFiles {
    fn epoch_finished(&mut self, history: &EpochHistory, metrics: &EpochMetrics) {
        self.history.push(history.clone());
        let entry = JournalEntry {
            metrics: metrics.clone(),
            device: self.device.clone(),
        };
        if let Err(err) = self
            .run
            .append_journal(&entry)
            .and_then(|_| self.run.write_metrics_csv())
        {
            self.interrupter.stop(Some(&format!("{err:#}")));
            return;
        }
        if let Err(err) = report::draw_curves(&self.run, &self.history, self.total_epochs) {
            eprintln!("warning: {err:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Seen(Arc<Mutex<Vec<EpochMetrics>>>);

    impl EpochSink for Seen {
        fn epoch_finished(&mut self, _: &EpochHistory, metrics: &EpochMetrics) {
            self.0.lock().unwrap().push(metrics.clone());
        }
    }

    #[test]
    fn a_journal_that_cannot_be_written_stops_training() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::create_dir(run.journal_file()).unwrap(); // appending to a directory fails
        let interrupter = Interrupter::new();
        let mut files = RunFiles::new(&run, ("cpu".into(), 2), 0, interrupter.clone());
        let history = EpochHistory {
            epoch: 1,
            train: vec![Batch::new(2, 1.0, 0.5)],
            test: vec![Batch::new(2, 1.0, 0.5)],
        };
        let metrics = EpochMetrics {
            epoch: 1,
            train_loss: 1.0,
            train_acc: 0.5,
            test_loss: 1.0,
            test_acc: 0.5,
            train_examples: 2,
            train_seconds: 1.0,
            epoch_seconds: 1.0,
            test_top3: None,
            lr: None,
        };
        files.epoch_finished(&history, &metrics);
        assert!(interrupter.should_stop());
        let message = interrupter.get_message().unwrap();
        assert!(message.contains("epochs.jsonl"), "{message}");
    }

    #[test]
    fn an_epoch_finishes_when_its_test_pass_is_complete() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let interrupter = Interrupter::new();
        let sinks: Vec<Box<dyn EpochSink>> = vec![Box::new(Seen(seen.clone()))];
        let mut accounting = EpochAccounting::new((3, interrupter.clone()), sinks);
        accounting.add_batch(4, LogSplit::Train, Batch::new(3, 2.0, 0.0));
        accounting.add_batch(4, LogSplit::Train, Batch::new(1, 1.0, 1.0));
        accounting.end_pass(LogSplit::Train);
        accounting.add_batch(4, LogSplit::Valid, Batch::new(2, 0.5, 0.5));
        interrupter.stop(None);
        accounting.end_pass(LogSplit::Valid); // interrupted: 2 of 3 test images
        assert!(seen.lock().unwrap().is_empty());
        interrupter.reset();
        accounting.add_batch(5, LogSplit::Train, Batch::new(4, 1.0, 0.5));
        accounting.end_pass(LogSplit::Train);
        accounting.add_batch(5, LogSplit::Valid, Batch::new(2, 0.5, 0.5));
        accounting.add_batch(5, LogSplit::Valid, Batch::new(1, 2.0, 1.0));
        accounting.end_pass(LogSplit::Valid);
        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 1);
            let m = &seen[0];
            assert_eq!((m.epoch, m.train_examples), (5, 4));
            assert_eq!((m.train_loss, m.train_acc), (1.0, 0.5));
            assert_eq!((m.test_loss, m.test_acc), (1.0, 2.0 / 3.0));
        }
        // A test image skipped as unreadable, the run going on: the epoch is finished.
        accounting.add_batch(6, LogSplit::Train, Batch::new(4, 1.0, 0.5));
        accounting.end_pass(LogSplit::Train);
        accounting.add_batch(6, LogSplit::Valid, Batch::new(2, 0.5, 0.5));
        accounting.end_pass(LogSplit::Valid);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }
}
