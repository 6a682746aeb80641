//! Metric logs that land under the right epoch after a resume.

use burn::train::logger::{FileMetricLogger, MetricLogger};
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, NumericEntry};

/// burn-train 0.21's event store numbers the first epoch it sees 1, even when the Learner resumes
/// from a checkpoint: the first resumed epoch's metrics would overwrite `epoch-1/`. This logger
/// files them under the epoch that actually runs; later epochs are numbered correctly by Burn.
pub struct EpochAlignedLogger {
    inner: FileMetricLogger,
    first_epoch: usize,
}

impl EpochAlignedLogger {
    /// Logs into `dir` like Burn's file logger, for a run whose first epoch is `first_epoch`.
    pub fn new(dir: &std::path::Path, first_epoch: usize) -> Self {
        Self {
            inner: FileMetricLogger::new(dir),
            first_epoch,
        }
    }

    /// The epoch an update reported by the store as `epoch` belongs to.
    fn actual_epoch(&self, epoch: usize) -> usize {
        epoch.max(self.first_epoch)
    }
}

impl MetricLogger for EpochAlignedLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let epoch = self.actual_epoch(epoch);
        self.inner.log(update, epoch, split);
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        self.inner.read_numeric(name, epoch, split)
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.inner.log_metric_definition(definition);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        self.inner.log_epoch_summary(summary);
    }
}
