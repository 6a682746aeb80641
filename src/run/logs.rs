//! burn-train's metric logs, `{train,valid}/epoch-N/Metric_Name.log` with one `value,count`
//! entry per batch: their paths and the one reader of their format.

use std::path::PathBuf;

use super::RunDir;
use super::history::{Batch, EpochHistory};

/// The split a metric log belongs to (burn-train names the test set "valid").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSplit {
    /// The training pass.
    Train,
    /// The test (validation) pass.
    Valid,
}

impl LogSplit {
    fn dir_name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Valid => "valid",
        }
    }
}

/// Parses one log entry: `value,count` (a numeric metric over `count` examples) or `value`.
fn parse_log_entry(line: &str) -> Option<(f64, usize)> {
    match line.split_once(',') {
        Some((value, count)) => Some((value.parse().ok()?, count.parse().ok()?)),
        None => Some((line.parse().ok()?, 1)),
    }
}

impl RunDir {
    /// The log of metric `name` (as burn-train names it, `"Loss"`, …) for one split and epoch.
    pub fn metric_log(&self, split: LogSplit, epoch: usize, name: &str) -> PathBuf {
        self.path()
            .join(split.dir_name())
            .join(format!("epoch-{epoch}"))
            .join(format!("{}.log", name.replace(' ', "_")))
    }

    /// The entries of one log, up to the first that does not parse (a run killed while writing
    /// leaves a cut-off tail, which is not an error); none when the log is missing.
    pub fn read_metric_log(&self, split: LogSplit, epoch: usize, name: &str) -> Vec<(f64, usize)> {
        std::fs::read_to_string(self.metric_log(split, epoch, name))
            .unwrap_or_default()
            .lines()
            .map_while(parse_log_entry)
            .collect()
    }

    /// The example-weighted mean of one log; `None` when it has no entry.
    pub fn mean_logged(&self, split: LogSplit, epoch: usize, name: &str) -> Option<f64> {
        let entries = self.read_metric_log(split, epoch, name);
        let count: usize = entries.iter().map(|e| e.1).sum();
        let sum: f64 = entries.iter().map(|(v, n)| v * *n as f64).sum();
        (count > 0).then(|| sum / count as f64)
    }

    /// The batches logged for one split of one epoch: sizes and accuracies (percent) from
    /// `Accuracy.log`, losses from `Loss.log`.
    fn read_batches(&self, split: LogSplit, epoch: usize) -> Vec<Batch> {
        self.read_metric_log(split, epoch, "Accuracy")
            .into_iter()
            .zip(self.read_metric_log(split, epoch, "Loss"))
            .map(|((percent, examples), (loss, _))| Batch::new(examples, loss, percent / 100.0))
            .collect()
    }

    /// Every epoch logged, in order, up to the first missing one.
    pub fn read_history(&self) -> Vec<EpochHistory> {
        (1..)
            .map_while(|epoch| {
                let train_dir = self.path().join(format!("train/epoch-{epoch}"));
                train_dir.is_dir().then(|| EpochHistory {
                    epoch,
                    train: self.read_batches(LogSplit::Train, epoch),
                    test: self.read_batches(LogSplit::Valid, epoch),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_with_and_without_a_count() {
        assert_eq!(parse_log_entry("2.5,32"), Some((2.5, 32)));
        assert_eq!(parse_log_entry("0.1"), Some((0.1, 1)));
        assert_eq!(parse_log_entry("5,"), None);
        assert_eq!(parse_log_entry("x,1"), None);
    }

    #[test]
    fn reads_burn_logs_and_stops_at_the_first_missing_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let write = |split: LogSplit, epoch: usize, acc: &str, loss: &str| {
            for (name, text) in [("Accuracy", acc), ("Loss", loss)] {
                let path = run.metric_log(split, epoch, name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
        };
        write(LogSplit::Train, 1, "50,2\n100,1\n", "2.0,1\n1.0,1\n");
        write(LogSplit::Valid, 1, "25,4\n", "1.5,1\n");
        write(LogSplit::Train, 2, "0,2\n50,2\n5,", "2.5,1\n2.4,1\n2.3,1\n");
        write(LogSplit::Train, 4, "0,2\n", "2.5,1\n");
        let h = run.read_history();
        assert_eq!(h.len(), 2);
        assert_eq!(
            h[0].train,
            vec![Batch::new(2, 2.0, 0.5), Batch::new(1, 1.0, 1.0)]
        );
        assert_eq!(h[0].test_totals().unwrap().accuracy, 0.25);
        assert_eq!(
            h[1].train.len(),
            2,
            "an unparsable tail is dropped, not fatal"
        );
        assert!(h[1].test.is_empty());
        assert_eq!(run.mean_logged(LogSplit::Train, 1, "Loss"), Some(1.5));
        assert_eq!(run.mean_logged(LogSplit::Valid, 3, "Loss"), None);
    }
}
