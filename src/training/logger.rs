//! burn-train's metric logs (`{train,valid}/epoch-N/Metric_Name.log`, one entry per batch),
//! written by a logger that survives what Burn's `FileMetricLogger` does not (a resumed run, a
//! full disk) and that does the per-epoch accounting as the entries arrive.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::train::Interrupter;
use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};

use super::epochs::EpochAccounting;
use crate::run::{Batch, LogSplit, RunDir};

/// Writes the same files as Burn's `FileMetricLogger`, with three differences:
///
/// - burn-train 0.21's event store numbers the first epoch it sees 1, even when the Learner
///   resumes from a checkpoint, so the first resumed epoch's metrics would overwrite `epoch-1/`;
///   they are filed under the epoch that actually runs.
/// - A write that fails (disk full, directory gone) stops training through the interrupter with
///   the error as its message, where Burn's logger panics in a background thread.
/// - Each batch's loss, accuracy, top-3 accuracy and learning rate go to the
///   [`EpochAccounting`] too, as the numbers burn-train computed (not re-read from the logs).
pub struct RunLogger {
    run: RunDir,
    first_epoch: usize,
    names: HashMap<MetricId, String>,
    files: HashMap<PathBuf, BufWriter<File>>,
    interrupter: Interrupter,
    failed: bool,
    accounting: EpochAccounting,
    /// When training started, until the first training step is logged and announced.
    announce_first_step: Option<Instant>,
}

/// The metrics whose entries make up a [`Batch`].
const LOSS: &str = "Loss";
const ACCURACY: &str = "Accuracy";
/// burn-train's name of `TopKAccuracyMetric::new(3)`.
const TOP3: &str = "Top-K Accuracy @ TopK(3)";
const LEARNING_RATE: &str = "Learning Rate";

fn log_split(split: &Split) -> Option<LogSplit> {
    match split {
        Split::Train => Some(LogSplit::Train),
        Split::Valid => Some(LogSplit::Valid),
        _ => None,
    }
}

impl RunLogger {
    /// Logs into `run` for a run whose first epoch is `first_epoch`.
    pub fn new(
        run: &RunDir,
        first_epoch: usize,
        interrupter: Interrupter,
        accounting: EpochAccounting,
    ) -> Self {
        Self {
            run: run.clone(),
            first_epoch,
            names: HashMap::new(),
            files: HashMap::new(),
            interrupter,
            failed: false,
            accounting,
            announce_first_step: None,
        }
    }

    /// Prints how long after `start` the first training step finished (on a GPU, the
    /// compile-and-tune cost of a start).
    pub fn announce_first_step(mut self, start: Instant) -> Self {
        self.announce_first_step = Some(start);
        self
    }

    fn fail(&mut self, path: &Path, err: std::io::Error) {
        if !self.failed {
            self.failed = true;
            let message = format!("cannot write the metric log {}: {err}", path.display());
            self.interrupter.stop(Some(&message));
        }
    }

    fn write(&mut self, path: PathBuf, line: &str) {
        if self.failed {
            return;
        }
        if !self.files.contains_key(&path) {
            let opened = fs::create_dir_all(path.parent().expect("log files have a parent"))
                .and_then(|_| {
                    OpenOptions::new()
                        .create(true)
                        .write(true)
                        .truncate(true)
                        .open(&path)
                });
            match opened {
                Ok(file) => {
                    self.files.insert(path.clone(), BufWriter::new(file));
                }
                Err(err) => return self.fail(&path, err),
            }
        }
        // Flushed per line: logs stay current for whoever follows them, and a full disk is
        // noticed at once.
        let file = self.files.get_mut(&path).expect("opened above");
        if let Err(err) = writeln!(file, "{line}").and_then(|_| file.flush()) {
            self.fail(&path, err);
        }
    }

    fn flush(&mut self) {
        let mut error = None;
        for (path, file) in &mut self.files {
            if let Err(err) = file.flush() {
                error.get_or_insert((path.clone(), err));
            }
        }
        if let Some((path, err)) = error {
            self.fail(&path, err);
        }
    }
}

/// A numeric entry as (value, examples it averages over).
fn value_and_count(entry: &NumericEntry) -> (f64, usize) {
    match entry {
        NumericEntry::Value(value) => (*value, 1),
        NumericEntry::Aggregated {
            aggregated_value,
            count,
        } => (*aggregated_value, *count),
    }
}

/// Hands one batch's numbers, by metric name, to the accounting.
fn account<'a>(
    accounting: &mut EpochAccounting,
    (epoch, split): (usize, LogSplit),
    numbers: impl Iterator<Item = (&'a str, (f64, usize))>,
) {
    let (mut loss, mut accuracy) = (None, None);
    for (name, (value, count)) in numbers {
        match name {
            LOSS => loss = Some(value),
            ACCURACY => accuracy = Some((value, count)),
            TOP3 => accounting.add_top3(value / 100.0, count),
            LEARNING_RATE => accounting.set_lr(value),
            _ => {}
        }
    }
    if let (Some(loss), Some((percent, examples))) = (loss, accuracy) {
        accounting.add_batch(epoch, split, Batch::new(examples, loss, percent / 100.0));
    }
}

impl MetricLogger for RunLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let Some(split) = log_split(split) else {
            return;
        };
        let epoch = epoch.max(self.first_epoch);
        let mut lines = Vec::new();
        let entries = update
            .entries
            .iter()
            .chain(update.entries_numeric.iter().map(|n| &n.entry));
        for entry in entries {
            if let Some(name) = self.names.get(&entry.metric_id) {
                let line = entry.serialized_entry.serialized.clone();
                lines.push((self.run.metric_log(split, epoch, name), line));
            }
        }
        for (path, line) in lines {
            self.write(path, &line);
        }
        if split == LogSplit::Train
            && let Some(start) = self.announce_first_step.take()
        {
            println!(
                "first training step done {:.1} s after training started",
                start.elapsed().as_secs_f64()
            );
        }
        let numbers = update.entries_numeric.iter().filter_map(|n| {
            let name = self.names.get(&n.entry.metric_id)?;
            Some((name.as_str(), value_and_count(&n.numeric_entry)))
        });
        account(&mut self.accounting, (epoch, split), numbers);
    }

    // burn-train's `MetricLogger` trait spells this error as a String.
    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        self.flush();
        let Some(split) = log_split(split) else {
            return Ok(Vec::new());
        };
        let text = fs::read_to_string(self.run.metric_log(split, epoch, name)).unwrap_or_default();
        // A tail cut short by a crash is not an error: the entries before it are kept.
        Ok(text
            .lines()
            .map_while(|l| NumericEntry::deserialize(l).ok())
            .collect())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.clone());
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        self.flush();
        self.files.clear();
        if let Some(split) = log_split(&summary.split) {
            self.accounting.end_pass(split);
        }
    }
}

impl Drop for RunLogger {
    fn drop(&mut self) {
        self.flush();
    }
}
