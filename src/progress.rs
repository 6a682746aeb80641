//! Per-epoch progress: d2l-style lines when stdout is not a terminal, and a record of every
//! finished epoch for the final report, with burn-train's dashboard drawn when it is.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::train::LearnerSummary;
use burn::train::metric::{MetricDefinition, MetricId};
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};
use serde::{Deserialize, Serialize};

use crate::report::{self, Batch, Curves, EpochHistory, JournalEntry};

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

    /// The one-line summary printed when stdout is not a terminal.
    pub fn line(&self, total_epochs: usize) -> String {
        format!(
            "epoch {}/{}: loss {:.3}, train acc {:.3}, test acc {:.3}, {:.1} examples/sec",
            self.epoch,
            total_epochs,
            self.train_loss,
            self.train_acc,
            self.test_acc,
            self.examples_per_sec()
        )
    }
}

/// Finished epochs, shared between the renderer (which fills it) and the caller.
#[derive(Debug, Clone, Default)]
pub struct EpochLog(Arc<Mutex<Vec<EpochMetrics>>>);

impl EpochLog {
    /// A copy of the epochs finished so far.
    pub fn epochs(&self) -> Vec<EpochMetrics> {
        self.0.lock().expect("epoch log poisoned").clone()
    }

    fn push(&self, epoch: EpochMetrics) {
        self.0.lock().expect("epoch log poisoned").push(epoch);
    }

    /// Training throughput over all finished epochs, as d2l's final figure.
    pub fn examples_per_sec(&self) -> f64 {
        let epochs = self.epochs();
        let examples: usize = epochs.iter().map(|e| e.train_examples).sum();
        let seconds: f64 = epochs.iter().map(|e| e.train_seconds).sum();
        examples as f64 / seconds.max(f64::MIN_POSITIVE)
    }
}

const LOSS: &str = "Loss";
const ACCURACY: &str = "Accuracy";

/// Where a run's files go, so each finished epoch extends its journal and curves.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// The artifact directory.
    pub dir: PathBuf,
    /// Backend and device, for the journal.
    pub device: String,
    /// Epochs finished before this process started (a resumed run), for the curves.
    pub earlier: Vec<EpochHistory>,
}

/// Appends a batch that brought a split's progress to `items_processed`.
fn add_batch(batches: &mut Vec<Batch>, items_processed: usize, latest: &HashMap<String, f64>) {
    let seen: usize = batches.iter().map(|b| b.examples).sum();
    batches.push(Batch {
        examples: items_processed.saturating_sub(seen),
        loss: latest.get(LOSS).copied().unwrap_or(f64::NAN),
        accuracy: latest.get(ACCURACY).copied().unwrap_or(f64::NAN) / 100.0,
    });
}

/// A burn-train renderer that accumulates per-epoch metrics, prints one line per epoch when
/// there is no dashboard, and otherwise forwards everything to the dashboard.
pub struct ProgressRenderer {
    total_epochs: usize,
    log: EpochLog,
    dashboard: Option<Box<dyn MetricsRenderer>>,
    names: HashMap<MetricId, String>,
    latest: HashMap<String, f64>,
    current: EpochHistory,
    files: Option<RunFiles>,
    phase_start: Instant,
    train_seconds: f64,
}

impl ProgressRenderer {
    /// Prints epoch lines when `dashboard` is `None`; records epochs into `log` either way,
    /// and into the run's journal and curves when `files` is given.
    pub fn new(
        total_epochs: usize,
        log: EpochLog,
        dashboard: Option<Box<dyn MetricsRenderer>>,
        files: Option<RunFiles>,
    ) -> Self {
        Self {
            total_epochs,
            log,
            dashboard,
            names: HashMap::new(),
            latest: HashMap::new(),
            current: EpochHistory::default(),
            files,
            phase_start: Instant::now(),
            train_seconds: 0.0,
        }
    }

    fn remember(&mut self, state: &MetricState) {
        if let MetricState::Numeric(entry, value) = state
            && let Some(name) = self.names.get(&entry.metric_id)
        {
            self.latest.insert(name.clone(), value.current());
        }
    }

    fn enter_epoch(&mut self, epoch: usize) {
        if epoch != self.current.epoch {
            if self.dashboard.is_some() {
                crate::training::keep_ctrl_c_as_signal();
            }
            self.current = EpochHistory {
                epoch,
                ..Default::default()
            };
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
        };
        if self.dashboard.is_none() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", metrics.line(self.total_epochs));
            let _ = out.flush();
        }
        self.record_to_files(&metrics);
        self.log.push(metrics);
        self.phase_start = Instant::now();
    }

    /// Extends the journal and redraws the curves; a failure is a warning, training goes on.
    fn record_to_files(&mut self, metrics: &EpochMetrics) {
        let Some(files) = &mut self.files else {
            return;
        };
        files.earlier.push(self.current.clone());
        let entry = JournalEntry {
            metrics: metrics.clone(),
            device: files.device.clone(),
        };
        let curves = Curves::from_history(&files.earlier);
        let written = report::append_journal(&files.dir, &entry).and_then(|_| {
            report::write_curves_svg(&curves, self.total_epochs, &report::curves_path(&files.dir))
        });
        if let Err(err) = written {
            eprintln!("warning: {err:#}");
        }
    }
}

impl MetricsRendererTraining for ProgressRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.remember(&state);
        if let Some(d) = &mut self.dashboard {
            d.update_train(state);
        }
    }

    fn update_valid(&mut self, state: MetricState) {
        self.remember(&state);
        if let Some(d) = &mut self.dashboard {
            d.update_valid(state);
        }
    }

    fn render_train(&mut self, item: TrainingProgress, indicators: Vec<ProgressType>) {
        self.enter_epoch(item.global_progress.items_processed);
        if let Some(progress) = &item.progress {
            add_batch(
                &mut self.current.train,
                progress.items_processed,
                &self.latest,
            );
            if progress.items_processed >= progress.items_total {
                self.train_seconds = self.phase_start.elapsed().as_secs_f64();
            }
        }
        if let Some(d) = &mut self.dashboard {
            d.render_train(item, indicators);
        }
    }

    fn render_valid(&mut self, item: TrainingProgress, indicators: Vec<ProgressType>) {
        self.enter_epoch(item.global_progress.items_processed);
        let done = item.progress.as_ref().map(|progress| {
            add_batch(
                &mut self.current.test,
                progress.items_processed,
                &self.latest,
            );
            progress.items_processed >= progress.items_total
        });
        if let Some(d) = &mut self.dashboard {
            d.render_valid(item, indicators);
        }
        if done == Some(true) {
            self.finish_epoch();
        }
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        match &mut self.dashboard {
            Some(d) => d.on_train_end(summary),
            None => Ok(()),
        }
    }
}

impl MetricsRendererEvaluation for ProgressRenderer {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        if let Some(d) = &mut self.dashboard {
            d.update_test(name, state);
        }
    }

    fn render_test(&mut self, item: EvaluationProgress, indicators: Vec<ProgressType>) {
        if let Some(d) = &mut self.dashboard {
            d.render_test(item, indicators);
        }
    }
}

impl MetricsRenderer for ProgressRenderer {
    fn manual_close(&mut self) {
        if let Some(d) = &mut self.dashboard {
            d.manual_close();
        }
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.clone());
        if let Some(d) = &mut self.dashboard {
            d.register_metric(definition);
        }
    }
}
