//! What training shows: burn-train's dashboard when stdout is a terminal, otherwise one line per
//! finished epoch.

use std::io::Write;

use burn::train::Interrupter;
use burn::train::LearnerSummary;
use burn::train::metric::MetricDefinition;
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};

use super::epochs::EpochSink;
use super::interrupt::KeepCtrlC;
use crate::run::{EpochHistory, EpochMetrics};

/// The renderer burn-train drives: the dashboard, or nothing between the epoch lines.
pub struct Renderer(Option<KeepCtrlC<TuiMetricsRendererWrapper>>);

impl Renderer {
    /// The dashboard (resumed from `resume_from`'s epoch), its quit key stopping `interrupter`.
    pub fn dashboard(interrupter: Interrupter, resume_from: Option<usize>) -> Self {
        Self(Some(KeepCtrlC(TuiMetricsRendererWrapper::new(
            interrupter,
            resume_from,
        ))))
    }

    /// No dashboard: [`EpochLines`] says what happened.
    pub fn lines() -> Self {
        Self(None)
    }
}

/// Prints `epoch 3/10: loss 0.512, train acc 0.812, test acc 0.830, 35.2 examples/sec`.
pub struct EpochLines {
    /// Epochs of the whole run.
    pub total_epochs: usize,
}

impl EpochLines {
    /// The line of one finished epoch.
    pub fn line(&self, m: &EpochMetrics) -> String {
        format!(
            "epoch {}/{}: loss {:.3}, train acc {:.3}, test acc {:.3}, {:.1} examples/sec",
            m.epoch,
            self.total_epochs,
            m.train_loss,
            m.train_acc,
            m.test_acc,
            m.examples_per_sec()
        )
    }
}

impl EpochSink for EpochLines {
    fn epoch_finished(&mut self, _: &EpochHistory, metrics: &EpochMetrics) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.line(metrics));
        let _ = out.flush();
    }
}

impl MetricsRendererTraining for Renderer {
    fn update_train(&mut self, state: MetricState) {
        if let Some(d) = &mut self.0 {
            d.update_train(state);
        }
    }

    fn update_valid(&mut self, state: MetricState) {
        if let Some(d) = &mut self.0 {
            d.update_valid(state);
        }
    }

    fn render_train(&mut self, item: TrainingProgress, indicators: Vec<ProgressType>) {
        if let Some(d) = &mut self.0 {
            d.render_train(item, indicators);
        }
    }

    fn render_valid(&mut self, item: TrainingProgress, indicators: Vec<ProgressType>) {
        if let Some(d) = &mut self.0 {
            d.render_valid(item, indicators);
        }
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        match &mut self.0 {
            Some(d) => d.on_train_end(summary),
            None => Ok(()),
        }
    }
}

impl MetricsRendererEvaluation for Renderer {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        if let Some(d) = &mut self.0 {
            d.update_test(name, state);
        }
    }

    fn render_test(&mut self, item: EvaluationProgress, indicators: Vec<ProgressType>) {
        if let Some(d) = &mut self.0 {
            d.render_test(item, indicators);
        }
    }
}

impl MetricsRenderer for Renderer {
    fn manual_close(&mut self) {
        if let Some(d) = &mut self.0 {
            d.manual_close();
        }
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        if let Some(d) = &mut self.0 {
            d.register_metric(definition);
        }
    }
}
