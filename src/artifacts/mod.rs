//! The layout of an artifact directory: `config.json`, burn-train's logs and checkpoints, and the
//! final `model.mpk`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

mod recorder;

pub use recorder::{AtomicMpkRecorder, partial_path};

/// The recorder of every record this crate writes: named MessagePack, f32, written atomically.
pub fn recorder() -> AtomicMpkRecorder {
    AtomicMpkRecorder
}

/// The three records burn-train's checkpointer writes for an epoch.
pub const CHECKPOINT_PARTS: [&str; 3] = ["model", "optim", "scheduler"];

/// Entries a training run writes; an artifact directory holding any of them holds a run.
const RUN_ENTRIES: [&str; 13] = [
    "config.json",
    "model.mpk",
    "checkpoint",
    "train",
    "valid",
    "experiment.log",
    "epochs.jsonl",
    "curves.svg",
    "curves.png",
    "report.json",
    "report.md",
    "eval.json",
    "confusion.svg",
];

/// `config.json`: the model and training configuration of the run.
pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("config.json")
}

/// The final model record, without the `.mpk` extension the recorder adds.
pub fn model_path(dir: &Path) -> PathBuf {
    dir.join("model")
}

/// The Learner's checkpoint directory.
pub fn checkpoint_dir(dir: &Path) -> PathBuf {
    dir.join("checkpoint")
}

/// One record of the checkpoint of `epoch` (`part` is `model`, `optim` or `scheduler`).
pub fn checkpoint_file(dir: &Path, part: &str, epoch: usize) -> PathBuf {
    checkpoint_dir(dir).join(format!("{part}-{epoch}.mpk"))
}

/// Epochs whose three checkpoint records are all present, oldest first.
pub fn complete_checkpoints(dir: &Path) -> Vec<usize> {
    let Ok(entries) = fs::read_dir(checkpoint_dir(dir)) else {
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
                .all(|p| checkpoint_file(dir, p, epoch).is_file())
        })
        .collect();
    epochs.sort_unstable();
    epochs
}

/// Removes `.partial` records left by a run that was killed while writing one.
pub fn remove_partial_records(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(checkpoint_dir(dir)) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.to_string_lossy().ends_with(".partial") {
            fs::remove_file(&path)
                .with_context(|| format!("cannot remove the partial record {}", path.display()))?;
        }
    }
    Ok(())
}

/// Creates `dir` for a new run. Refuses to mix with an earlier run unless `overwrite`, in which
/// case the earlier run's files (and only those) are removed.
pub fn prepare_run_dir(dir: &Path, overwrite: bool) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the artifact directory {}; choose a writable --artifact-dir",
            dir.display()
        )
    })?;
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
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed
            .with_context(|| format!("cannot remove {} from the earlier run", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_runs_are_kept_unless_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("README.md"), "keep").unwrap();
        prepare_run_dir(dir.path(), false).unwrap();
        fs::create_dir(dir.path().join("checkpoint")).unwrap();
        fs::write(config_path(dir.path()), "{}").unwrap();
        let err = prepare_run_dir(dir.path(), false).unwrap_err().to_string();
        assert!(
            err.contains("--overwrite") && err.contains("checkpoint"),
            "{err}"
        );
        prepare_run_dir(dir.path(), true).unwrap();
        assert!(!dir.path().join("checkpoint").exists());
        assert!(!config_path(dir.path()).exists());
        assert!(dir.path().join("README.md").exists());
    }

    #[test]
    fn only_epochs_with_all_three_records_are_complete() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(checkpoint_dir(dir.path())).unwrap();
        for (epoch, parts) in [
            (1, &CHECKPOINT_PARTS[..]),
            (2, &CHECKPOINT_PARTS[..]),
            (3, &CHECKPOINT_PARTS[..2]),
        ] {
            for part in parts {
                fs::write(checkpoint_file(dir.path(), part, epoch), b"x").unwrap();
            }
        }
        let partial = partial_path(&checkpoint_file(dir.path(), "scheduler", 3));
        fs::write(&partial, b"half").unwrap();
        assert_eq!(complete_checkpoints(dir.path()), vec![1, 2]);
        remove_partial_records(dir.path()).unwrap();
        assert!(!partial.exists());
        assert!(checkpoint_file(dir.path(), "model", 3).exists());
    }
}
