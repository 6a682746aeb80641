//! Where and how a run happens beyond its configuration, and how a call to train ends.

use std::path::PathBuf;

use super::epochs::EpochLog;
use super::plan::Start;
use super::progress::Cadence;
use crate::assess::Assessed;
use crate::run::EarlyStop;

/// Where and how one training run happens, beyond its configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The artifact directory (config, logs, checkpoints, final model).
    pub artifact_dir: PathBuf,
    /// An explicit Fashion-MNIST directory, else the default search.
    pub data_dir: Option<PathBuf>,
    /// A new run, or the continuation of the one in the artifact directory.
    pub start: Start,
    /// What training prints while it runs.
    pub display: Display,
    /// Backend and device, for the journal and report.
    pub device_label: String,
    /// The GPU kernel cache in use; on a GPU backend, training first compiles and tunes the
    /// kernels of its steps there, saying so, rather than leaving the first minutes silent.
    pub kernel_cache: Option<PathBuf>,
}

/// What training prints while it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Display {
    /// burn-train's dashboard (stdout is a terminal).
    Dashboard,
    /// A line per finished epoch, and progress lines inside each epoch.
    Lines(Cadence),
    /// Nothing until the closing lines (`--quiet`).
    Quiet,
}
/// How a call to [`train`] ended.
#[derive(Debug, Clone)]
pub enum TrainOutcome {
    /// Every epoch trained; the final model is written.
    Trained {
        /// Per-epoch metrics of the epochs this process ran.
        epochs: EpochLog,
        /// Where the final model record was written.
        model_path: PathBuf,
        /// The final model's evaluation on the validation images, with its gallery of mistakes;
        /// `None` when it failed (said on stderr: the model is kept all the same).
        assessed: Option<Box<Assessed>>,
    },
    /// A resumed run that had already trained all its epochs, or been stopped early (and
    /// `--epochs` was not raised); its final files are complete.
    AlreadyFinished(Option<EarlyStop>),
}
