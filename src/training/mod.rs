//! Training with burn-train's `SupervisedTraining` and `Learner`: the d2l protocol by default,
//! resumable from the newest complete checkpoint.
//!
//! [`train`] runs in three steps: `prepare` (the run directory, data, network and resume point;
//! every resume decision is in [`resume`]), `launch` (burn-train's Learner with the parts below)
//! and `finish` (the report, then the final model or why the run stopped). The learning rate
//! goes from the config to [`optimizer`], which builds the SGD and the schedule the Learner
//! steps. One epoch's numbers travel from the Learner to the files and the screen like this:
//!
//! ```text
//! Learner ──metric updates──▶ RunLogger (logger.rs)
//!    │                         ├──▶ train/, valid/: burn-train's metric logs, a line per batch
//!    │                         └──▶ EpochAccounting (epochs.rs): each batch's loss, accuracy,
//!    │                              top-3 accuracy and learning rate
//!    │                               ├──▶ ProgressLines (progress.rs): lines inside an epoch
//!    │                               └──▶ when the epoch's test pass is complete, its
//!    │                                    EpochMetrics to every EpochSink:
//!    │                                     ├─ RunFiles (epochs.rs): epochs.jsonl, metrics.csv,
//!    │                                     │  curves.svg
//!    │                                     ├─ EpochLines (renderer.rs): a line per epoch
//!    │                                     └─ EpochLog (epochs.rs): the closing lines
//!    └──metric states──▶ Renderer (renderer.rs): burn-train's dashboard, on a terminal
//! ```
//!
//! `report.json` and `report.md` are rebuilt from those files when the run ends.

mod best;
mod classifier;
mod early_stop;
mod epochs;
mod finish;
mod guard;
mod init;
mod interrupt;
mod launch;
mod loaders;
mod logger;
pub mod optimizer;
mod options;
mod plan;
mod prepare;
mod progress;
mod renderer;
pub mod resume;
mod throughput;
pub mod warmup;

use std::time::Instant;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;

pub use classifier::Classifier;
pub use epochs::{EpochLog, EpochSink};
pub use guard::{LossFault, LossGuard};
pub use init::InputSizeMismatch;
pub use interrupt::{Remedy, StopReason, TrainingStopped};
pub use loaders::augmentation;
pub use options::{Display, RunOptions, TrainOutcome};
pub use plan::{Plan, Start, resolve_config};
pub use progress::Cadence;
pub use renderer::EpochLines;
pub use resume::ResumeConflict;
pub use throughput::ExamplesPerSecond;

use crate::run::{OptimizerKind, RunDir};
use optimizer::Sgd;

/// Trains AlexNet on backend `B` as a [`resolve_config`]d `plan` says, on `devices` (the
/// first is the main one), writing everything into the artifact directory.
pub fn train<B: AutodiffBackend>(
    devices: Vec<B::Device>,
    plan: Plan,
    options: &RunOptions,
) -> Result<TrainOutcome> {
    let start = Instant::now();
    let run = RunDir::new(&options.artifact_dir);
    let Some(prepared) = prepare::prepare::<B>(&devices[0], plan, options)? else {
        return Ok(TrainOutcome::AlreadyFinished(run.early_stop()));
    };
    if let Some(dir) = &options.kernel_cache {
        prepare::compile_kernels::<B>(&prepared, &devices[0], dir)?;
    }
    // The Learner's type names the optimizer, so each of Burn's is a launch of its own.
    let launched = match prepared.config.optimizer.kind {
        OptimizerKind::Sgd => launch::launch::<B, Sgd<B>>(prepared, devices, options, start),
        OptimizerKind::Adam => {
            launch::launch::<B, burn::optim::Adam>(prepared, devices, options, start)
        }
        OptimizerKind::Adamw => {
            launch::launch::<B, burn::optim::AdamW>(prepared, devices, options, start)
        }
    };
    finish::finish(launched)
}
