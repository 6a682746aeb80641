//! A run directory (`--artifact-dir`): the one owner of its file names, of `config.json` and its
//! settings, of the record files, the metric logs, the epoch journal and the choice of the best
//! epoch. Every other module reaches a run's files through [`RunDir`].

mod config;
mod history;
mod journal;
mod lock;
mod logs;
mod records;
mod settings;

use std::fs;
use std::path::{Path, PathBuf};

use alexnet_model::AlexNet;
use anyhow::{Context, Result, bail};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;

pub use config::{
    AugmentConfig, DataConfig, InitConfig, LrSchedule, MAX_WORKERS, OptimizerConfig, OptimizerKind,
    TrainingConfig, UnknownField, fashion_mnist_classes, imagenet_classes,
};
pub use history::{Batch, EpochHistory, SAMPLES_PER_EPOCH, Totals};
pub use journal::{EpochMetrics, JournalEntry, METRICS_CSV_HEADER};
pub use lock::RunLock;
pub use logs::LogSplit;
pub use records::{
    AtomicMpkRecorder, CHECKPOINT_PARTS, RecordError, describe, load_net, partial_path, recorder,
};
pub use settings::{
    ConfigError, Declaration, Kind, Overrides, Setting, SettingNames, Value, field_names, not_d2l,
};

/// Entries a training run writes; a directory holding any of them holds a run.
const RUN_ENTRIES: [&str; 17] = [
    "config.json",
    "images.json",
    "bad-images.jsonl",
    "early-stop.json",
    "model.mpk",
    "checkpoint",
    "train",
    "valid",
    "experiment.log",
    "epochs.jsonl",
    "metrics.csv",
    "curves.svg",
    "curves.png",
    "report.json",
    "report.md",
    "eval.json",
    "confusion.svg",
];

/// Writes `bytes` to `path` through a `.partial` file and a rename, so that a reader or a crash
/// sees the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = partial_path(path);
    fs::write(&partial, bytes)
        .and_then(|_| fs::rename(&partial, path))
        .inspect_err(|_| {
            let _ = fs::remove_file(&partial);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}

/// How early stopping ended a run: the epoch it stopped after, the best epoch (whose weights
/// became the final model) and the settings it stopped under.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EarlyStop {
    /// The last epoch trained.
    pub epoch: usize,
    /// The epoch with the lowest validation loss; `model.mpk` holds its weights.
    pub best_epoch: usize,
    /// Epochs without a better validation loss that stop the run.
    pub patience: usize,
    /// The epochs the run was configured for when it stopped.
    pub epochs: usize,
}

impl EarlyStop {
    /// One line for reports and the terminal.
    pub fn describe(&self) -> String {
        format!(
            "stopped early after epoch {} of {}: the validation loss had not improved for {} \
             epochs; the final model is epoch {}'s (the best)",
            self.epoch, self.epochs, self.patience, self.best_epoch
        )
    }
}

/// One training run's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// The run directory at `path` (nothing is read or created yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `config.json`: the model and training configuration.
    pub fn config_file(&self) -> PathBuf {
        self.path.join("config.json")
    }

    /// `images.json`: an image-folder run's classes and the files of each split, fixed when
    /// the run starts, so that resume, `eval` and the report see the same images.
    pub fn images_file(&self) -> PathBuf {
        self.path.join("images.json")
    }

    /// `early-stop.json`: why the run ended early ([`EarlyStop`]), when it did.
    pub fn early_stop_file(&self) -> PathBuf {
        self.path.join("early-stop.json")
    }

    /// The run's early stop, if early stopping ended it.
    pub fn early_stop(&self) -> Option<EarlyStop> {
        let path = self.early_stop_file();
        path.is_file().then(|| self.load_json(&path).ok()).flatten()
    }

    /// `bad-images.jsonl`: images that could not be decoded while training (left out).
    pub fn bad_images_file(&self) -> PathBuf {
        self.path.join("bad-images.jsonl")
    }

    /// Writes `value` as JSON to `path` in the run, whole or not at all.
    pub fn save_json<T: serde::Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let text = serde_json::to_vec(value).context("the value serialises")?;
        write_atomically(path, &text)
    }

    /// Reads the JSON file `path` of the run.
    pub fn load_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<T> {
        let text = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| {
            format!(
                "{} is damaged (not the JSON this run wrote)",
                path.display()
            )
        })
    }

    /// `model.mpk`: the final network, written when training finishes.
    pub fn model_file(&self) -> PathBuf {
        self.path.join("model.mpk")
    }

    /// Writes `net` as the run's final model (`model.mpk`), whole or not at all.
    pub fn save_model<B: Backend>(&self, net: &AlexNet<B>) -> Result<PathBuf> {
        let path = self.model_file();
        net.clone()
            .save_file(&path, &recorder())
            .with_context(|| format!("cannot write the final model to {}", path.display()))?;
        Ok(path)
    }

    /// The Learner's checkpoint directory.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.path.join("checkpoint")
    }

    /// One record of the checkpoint of `epoch` (`part` is one of [`CHECKPOINT_PARTS`]).
    pub fn checkpoint_file(&self, part: &str, epoch: usize) -> PathBuf {
        self.checkpoint_dir().join(format!("{part}-{epoch}.mpk"))
    }

    /// `epochs.jsonl`: one line per finished epoch.
    pub fn journal_file(&self) -> PathBuf {
        self.path.join("epochs.jsonl")
    }

    /// `metrics.csv`: one row per finished epoch.
    pub fn metrics_csv_file(&self) -> PathBuf {
        self.path.join("metrics.csv")
    }

    /// `curves.svg`: d2l's training curves.
    pub fn curves_file(&self) -> PathBuf {
        self.path.join("curves.svg")
    }

    /// `report.json` and `report.md`.
    pub fn report_files(&self) -> [PathBuf; 2] {
        [self.path.join("report.json"), self.path.join("report.md")]
    }

    /// `eval.json`: the last `alexnet eval`.
    pub fn eval_file(&self) -> PathBuf {
        self.path.join("eval.json")
    }

    /// `mistakes.html`: the last evaluation's most confident wrong predictions, each with its
    /// Grad-CAM map; `mistakes.png` beside it holds the same pictures on one sheet.
    pub fn mistakes_file(&self) -> PathBuf {
        self.path.join("mistakes.html")
    }

    /// `confusion.svg`: the last evaluation's confusion matrix.
    pub fn confusion_file(&self) -> PathBuf {
        self.path.join("confusion.svg")
    }

    /// Creates the directory (and its parents), or says to choose a writable one.
    fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.path).with_context(|| {
            format!(
                "cannot create the artifact directory {}; choose a writable --artifact-dir",
                self.path.display()
            )
        })
    }

    /// Fails with the fix when the directory does not exist.
    pub fn require_exists(&self) -> Result<()> {
        if !self.path.is_dir() {
            bail!(
                "artifact directory {} does not exist; pass the --artifact-dir of a training run",
                self.path.display()
            );
        }
        Ok(())
    }

    /// The run's configuration, checked; every reader of `config.json` goes through here.
    pub fn load_config(&self) -> Result<TrainingConfig> {
        self.require_exists()?;
        let path = self.config_file();
        if !path.is_file() {
            bail!(
                "{} has no config.json, so it holds no training run; pass the --artifact-dir \
                 of a training run",
                self.path.display()
            );
        }
        let config = TrainingConfig::from_file(&path)
            .with_context(|| format!("{} is not a training config", path.display()))?;
        config
            .model
            .validate()
            .with_context(|| format!("{}", path.display()))?;
        Ok(config)
    }

    /// Writes `config.json`.
    pub fn save_config(&self, config: &TrainingConfig) -> Result<()> {
        config
            .save(self.config_file())
            .with_context(|| format!("cannot write the run config into {}", self.path.display()))
    }

    /// Epochs whose checkpoint records are all present, oldest first.
    pub fn complete_checkpoints(&self) -> Vec<usize> {
        let Ok(entries) = fs::read_dir(self.checkpoint_dir()) else {
            return Vec::new();
        };
        let mut epochs: Vec<usize> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| {
                name.strip_prefix("model-")?
                    .strip_suffix(".mpk")?
                    .parse()
                    .ok()
            })
            .filter(|&epoch| {
                CHECKPOINT_PARTS
                    .iter()
                    .all(|p| self.checkpoint_file(p, epoch).is_file())
            })
            .collect();
        epochs.sort_unstable();
        epochs
    }

    /// The best epoch, by the one rule of this crate: among the epochs whose checkpoint is
    /// complete, the first with the lowest mean test loss in the metric logs (what training's
    /// checkpointer keeps as "best"). `--checkpoint best` loads it and the report names it.
    pub fn best_epoch(&self) -> Option<usize> {
        self.complete_checkpoints()
            .into_iter()
            .filter_map(|epoch| Some((epoch, self.mean_logged(LogSplit::Valid, epoch, "Loss")?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(epoch, _)| epoch)
    }

    /// Removes `.partial` records left by a run that was killed while writing one.
    pub fn remove_partial_records(&self) -> Result<()> {
        let Ok(entries) = fs::read_dir(self.checkpoint_dir()) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.to_string_lossy().ends_with(".partial") {
                fs::remove_file(&path).with_context(|| {
                    format!("cannot remove the partial record {}", path.display())
                })?;
            }
        }
        Ok(())
    }

    /// Creates the directory for a new run. Refuses to mix with an earlier run unless
    /// `overwrite`, in which case the earlier run's files (and only those) are removed.
    pub fn prepare_new(&self, overwrite: bool) -> Result<()> {
        self.create()?;
        let dir = &self.path;
        let earlier: Vec<&str> = RUN_ENTRIES
            .into_iter()
            .filter(|e| dir.join(e).exists())
            .collect();
        if earlier.is_empty() {
            return Ok(());
        }
        if !overwrite {
            bail!(
                "{} already holds a training run ({}); pass --overwrite to replace it, or choose \
                 another --artifact-dir",
                dir.display(),
                earlier.join(", ")
            );
        }
        for entry in earlier {
            let path = dir.join(entry);
            let removed = match path.is_dir() {
                true => fs::remove_dir_all(&path),
                false => fs::remove_file(&path),
            };
            removed.with_context(|| {
                format!("cannot remove {} from the earlier run", path.display())
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_runs_are_kept_unless_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        fs::write(dir.path().join("README.md"), "keep").unwrap();
        run.prepare_new(false).unwrap();
        fs::create_dir(run.checkpoint_dir()).unwrap();
        fs::write(run.config_file(), "{}").unwrap();
        let err = run.prepare_new(false).unwrap_err().to_string();
        assert!(
            err.contains("--overwrite") && err.contains("checkpoint"),
            "{err}"
        );
        run.prepare_new(true).unwrap();
        assert!(!run.checkpoint_dir().exists());
        assert!(!run.config_file().exists());
        assert!(dir.path().join("README.md").exists());
    }

    fn write_checkpoint(run: &RunDir, epoch: usize, parts: &[&str]) {
        fs::create_dir_all(run.checkpoint_dir()).unwrap();
        for part in parts {
            fs::write(run.checkpoint_file(part, epoch), b"x").unwrap();
        }
    }

    #[test]
    fn only_epochs_with_all_three_records_are_complete() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        write_checkpoint(&run, 1, &CHECKPOINT_PARTS);
        write_checkpoint(&run, 2, &CHECKPOINT_PARTS);
        write_checkpoint(&run, 3, &CHECKPOINT_PARTS[..2]);
        let partial = partial_path(&run.checkpoint_file("scheduler", 3));
        fs::write(&partial, b"half").unwrap();
        assert_eq!(run.complete_checkpoints(), vec![1, 2]);
        run.remove_partial_records().unwrap();
        assert!(!partial.exists());
        assert!(run.checkpoint_file("model", 3).exists());
    }

    #[test]
    fn best_is_the_lowest_logged_test_loss_among_complete_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let write = |epoch: usize, loss: &str| {
            let log = run.metric_log(LogSplit::Valid, epoch, "Loss");
            fs::create_dir_all(log.parent().unwrap()).unwrap();
            fs::write(log, loss).unwrap();
            write_checkpoint(&run, epoch, &CHECKPOINT_PARTS);
        };
        write(1, "2.0,1\n1.0,1\n"); // mean 1.5
        write(2, "1.2,3\n0.4,1\n"); // weighted mean 1.0
        write(3, "1.1,1\n");
        assert_eq!(run.best_epoch(), Some(2));
        fs::remove_file(run.checkpoint_file("optim", 2)).unwrap();
        assert_eq!(run.best_epoch(), Some(3));
    }

    #[test]
    fn config_errors_say_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = RunDir::new(dir.path().join("nope"));
        let err = format!("{:#}", missing.load_config().unwrap_err());
        assert!(err.contains("does not exist"), "{err}");
        let run = RunDir::new(dir.path());
        let err = format!("{:#}", run.load_config().unwrap_err());
        assert!(err.contains("has no config.json"), "{err}");
        fs::write(run.config_file(), "{}").unwrap();
        let err = format!("{:#}", run.load_config().unwrap_err());
        assert!(err.contains("is not a training config"), "{err}");
        run.save_config(&TrainingConfig::d2l(96)).unwrap();
        assert_eq!(run.load_config().unwrap(), TrainingConfig::d2l(96));
    }
}
