//! Ctrl-C: the first one stops training after the current batch (keeping every complete
//! checkpoint), a second one exits at once.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};
use burn::train::{Interrupter, LearnerSummary};

use crate::data::TooManyBad;
use crate::run::{self, Setting, SettingNames};

/// The message Ctrl-C leaves in the interrupter.
const CTRL_C: &str = "Ctrl-C";

/// Why training stopped before its last epoch.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// Ctrl-C, or the dashboard's quit key.
    User,
    /// The training loss became NaN or infinite.
    LossNotFinite {
        /// Epoch of the bad step.
        epoch: usize,
        /// Step within that epoch (1-based).
        step: usize,
        /// Steps per epoch.
        steps: usize,
        /// The loss value.
        loss: f64,
        /// The learning rate of the run.
        lr: f64,
    },
    /// A write failed (disk full, directory removed, …); the message says which.
    Fault(String),
    /// An epoch could not read more of its images than `data.max_bad_fraction` allows.
    TooManyBadImages(TooManyBad),
}

impl StopReason {
    /// Reads why `interrupter` was stopped; `finding` is the loss guard's or the image
    /// loaders', if any, which names its cause better than the interrupter's message.
    pub fn from_interrupter(interrupter: &Interrupter, finding: Option<StopReason>) -> Self {
        if let Some(reason) = finding {
            return reason;
        }
        match interrupter.get_message() {
            Some(message) if message != CTRL_C => {
                StopReason::Fault(unwrap_recorder_error(&message))
            }
            _ => StopReason::User,
        }
    }
}

/// burn-train reports a failed checkpoint as ``Recorder error: `Unknown("…")` ``; keeps the
/// message inside.
fn unwrap_recorder_error(message: &str) -> String {
    message
        .split_once("Unknown(\"")
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map_or(message.to_string(), |(inner, _)| {
            inner.replace("\\\"", "\"")
        })
}

/// Training ended before its last epoch; the message says why, what survived and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{}; {}", self.describe(&run::field_names), self.remedy().describe())]
pub struct TrainingStopped {
    /// Why.
    pub reason: StopReason,
    /// The epoch that was running.
    pub epoch: usize,
    /// The newest complete checkpoint.
    pub kept: Option<usize>,
    /// The artifact directory.
    pub dir: PathBuf,
}

/// What the user can do after a [`TrainingStopped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// Resume the run.
    Resume,
    /// Fix the cause (free disk space, …), then resume the run.
    FixThenResume,
    /// Start a new run with a smaller learning rate.
    SmallerLearningRate,
    /// No epoch was kept, so nothing can be resumed: start the run again.
    StartAgain,
}

impl Remedy {
    /// The remedy in words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Resume => "resume the run to continue",
            Self::FixThenResume => "fix the cause (free disk space, …), then resume the run",
            Self::SmallerLearningRate => "start a new run with a smaller learning rate",
            Self::StartAgain => "start the run over from epoch 1 (its settings are saved)",
        }
    }
}

impl TrainingStopped {
    /// Whether the user asked for the stop (exit status 130) rather than a fault (1).
    pub fn by_user(&self) -> bool {
        self.reason == StopReason::User
    }

    /// What the user can do now.
    pub fn remedy(&self) -> Remedy {
        match (&self.reason, self.kept) {
            (StopReason::LossNotFinite { .. }, _) => Remedy::SmallerLearningRate,
            (_, None) => Remedy::StartAgain,
            (StopReason::User, Some(_)) => Remedy::Resume,
            (StopReason::Fault(_) | StopReason::TooManyBadImages(_), Some(_)) => {
                Remedy::FixThenResume
            }
        }
    }

    /// What happened and what survived, settings named by `name`.
    pub fn describe(&self, name: SettingNames) -> String {
        let kept = match self.kept {
            Some(epoch) => format!("the checkpoint of epoch {epoch} is intact"),
            None => "no epoch had finished, so there is no checkpoint yet".to_string(),
        };
        match &self.reason {
            StopReason::User => {
                format!("training interrupted during epoch {}; {kept}", self.epoch)
            }
            StopReason::LossNotFinite {
                epoch,
                step,
                steps,
                loss,
                lr,
            } => format!(
                "training stopped: the loss became {loss} at epoch {epoch}, step {step} of \
                 {steps}, so {} {lr} is probably too high (d2l uses 0.01); {kept}",
                name(Setting::Lr)
            ),
            StopReason::Fault(message) => format!(
                "training stopped during epoch {}: {message}; {kept}",
                self.epoch
            ),
            StopReason::TooManyBadImages(too_many) => format!(
                "training stopped: {}; {kept}",
                too_many.describe(&name(Setting::MaxBadFraction))
            ),
        }
    }
}

static PRESSED_ONCE: AtomicBool = AtomicBool::new(false);

/// Routes SIGINT to `interrupter`. Only the first call in a process installs the handler.
pub fn install(interrupter: Interrupter) {
    let _ = ctrlc::try_set_handler(move || {
        if PRESSED_ONCE.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting now; the last complete checkpoint is kept");
            std::process::exit(130);
        }
        interrupter.stop(Some(CTRL_C));
    });
}

/// The dashboard puts the terminal in raw mode, where Ctrl-C is a key press the dashboard
/// ignores; turning the terminal's signal keys back on makes Ctrl-C a SIGINT again.
fn keep_ctrl_c_as_signal() {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return;
    }
    // SAFETY: tcgetattr/tcsetattr on the process's own stdin with a zero-initialised struct
    // that tcgetattr fills; failures leave the terminal unchanged.
    unsafe {
        let mut attrs: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(libc::STDIN_FILENO, &mut attrs) == 0 && attrs.c_lflag & libc::ISIG == 0 {
            attrs.c_lflag |= libc::ISIG;
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &attrs);
        }
    }
}

/// A dashboard that keeps Ctrl-C a signal: before each redraw, the terminal's signal keys are
/// turned back on (one `tcgetattr` when they already are).
pub struct KeepCtrlC<R>(pub R);

impl<R: MetricsRenderer> MetricsRendererTraining for KeepCtrlC<R> {
    fn update_train(&mut self, state: MetricState) {
        self.0.update_train(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.0.update_valid(state);
    }

    fn render_train(&mut self, item: TrainingProgress, indicators: Vec<ProgressType>) {
        keep_ctrl_c_as_signal();
        self.0.render_train(item, indicators);
    }

    fn render_valid(&mut self, item: TrainingProgress, indicators: Vec<ProgressType>) {
        keep_ctrl_c_as_signal();
        self.0.render_valid(item, indicators);
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        self.0.on_train_end(summary)
    }
}

impl<R: MetricsRenderer> MetricsRendererEvaluation for KeepCtrlC<R> {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        self.0.update_test(name, state);
    }

    fn render_test(&mut self, item: EvaluationProgress, indicators: Vec<ProgressType>) {
        self.0.render_test(item, indicators);
    }
}

impl<R: MetricsRenderer> MetricsRenderer for KeepCtrlC<R> {
    fn manual_close(&mut self) {
        self.0.manual_close();
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.0.register_metric(definition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_errors_are_unwrapped() {
        let burn = "Recorder error: `Unknown(\"cannot write a.mpk.partial: No space left on device (os error 28)\")`";
        assert_eq!(
            unwrap_recorder_error(burn),
            "cannot write a.mpk.partial: No space left on device (os error 28)"
        );
        assert_eq!(unwrap_recorder_error("plain"), "plain");
    }
}
