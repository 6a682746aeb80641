//! `epochs.jsonl`: one line per finished epoch, with the timings only the training process saw.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::RunDir;

/// The metrics of one finished epoch, weighted by examples as d2l's `Accumulator` does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy in `[0, 1]`.
    pub train_acc: f64,
    /// Mean test (validation) loss.
    pub test_loss: f64,
    /// Test accuracy in `[0, 1]`.
    pub test_acc: f64,
    /// Training examples in the epoch.
    pub train_examples: usize,
    /// Wall seconds of the training pass (data loading included).
    pub train_seconds: f64,
    /// Wall seconds of the whole epoch (training and test passes).
    pub epoch_seconds: f64,
    /// Top-3 test accuracy in `[0, 1]` (absent in journals written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_top3: Option<f64>,
    /// The learning rate of the epoch's last step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
}

impl EpochMetrics {
    /// Training throughput of this epoch.
    pub fn examples_per_sec(&self) -> f64 {
        self.train_examples as f64 / self.train_seconds.max(f64::MIN_POSITIVE)
    }
}

/// The columns of `metrics.csv`.
pub const METRICS_CSV_HEADER: &str =
    "epoch,train_loss,train_acc,test_loss,test_acc,test_top3,lr,examples_per_sec,seconds\n";

/// One line of `epochs.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The epoch's metrics.
    #[serde(flatten)]
    pub metrics: EpochMetrics,
    /// Backend and device that ran it.
    pub device: String,
}

impl RunDir {
    /// Appends one finished epoch to the journal.
    pub fn append_journal(&self, entry: &JournalEntry) -> Result<()> {
        let path = self.journal_file();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let line = serde_json::to_string(entry).expect("journal entries serialise");
        writeln!(file, "{line}").with_context(|| format!("cannot write {}", path.display()))
    }

    /// Keeps the journal's entries of epochs `1..=done` only (one each), for a run resumed from
    /// the checkpoint of epoch `done`: the epochs after it run again and are journalled again.
    pub fn truncate_journal(&self, done: usize) -> Result<()> {
        let path = self.journal_file();
        if !path.exists() {
            return Ok(());
        }
        let kept: String = self
            .read_journal()
            .into_values()
            .filter(|e| e.metrics.epoch <= done)
            .map(|e| serde_json::to_string(&e).expect("journal entries serialise") + "\n")
            .collect();
        super::write_atomically(&path, kept.as_bytes())?;
        self.write_metrics_csv()
    }

    /// Rewrites `metrics.csv` from the journal: one row per finished epoch, for spreadsheets
    /// and pandas. Empty cells are values the epoch did not measure.
    pub fn write_metrics_csv(&self) -> Result<()> {
        let cell = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        let mut csv = String::from(METRICS_CSV_HEADER);
        for entry in self.read_journal().values() {
            let m = &entry.metrics;
            csv += &format!(
                "{},{},{},{},{},{},{},{:.3},{:.3}\n",
                m.epoch,
                m.train_loss,
                m.train_acc,
                m.test_loss,
                m.test_acc,
                cell(m.test_top3),
                cell(m.lr),
                m.examples_per_sec(),
                m.epoch_seconds
            );
        }
        super::write_atomically(&self.metrics_csv_file(), csv.as_bytes())
    }

    /// The journal's entries by epoch; a rerun epoch (after a resume) keeps its latest entry,
    /// and a line cut short by a crash is skipped.
    pub fn read_journal(&self) -> BTreeMap<usize, JournalEntry> {
        std::fs::read_to_string(self.journal_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<JournalEntry>(l).ok())
            .map(|e| (e.metrics.epoch, e))
            .collect()
    }
}
