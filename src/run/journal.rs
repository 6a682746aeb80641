//! `epochs.jsonl`: one line per finished epoch, with the timings only the training process saw.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::RunDir;

/// The metrics of one finished epoch, weighted by examples as d2l's `Accumulator` does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

impl EpochMetrics {
    /// Training throughput of this epoch.
    pub fn examples_per_sec(&self) -> f64 {
        self.train_examples as f64 / self.train_seconds.max(f64::MIN_POSITIVE)
    }
}

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
        super::write_atomically(&path, kept.as_bytes())
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
