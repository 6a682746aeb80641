//! The layout of an artifact directory: `config.json`, burn-train's logs and checkpoints, and the
//! final `model.mpk`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};

/// How model and optimizer records are written: MessagePack, full f32 precision.
pub type Recorder = NamedMpkFileRecorder<FullPrecisionSettings>;

/// The recorder of every record this crate writes.
pub fn recorder() -> Recorder {
    Recorder::new()
}

/// Entries a training run writes; an artifact directory holding any of them holds a run.
const RUN_ENTRIES: [&str; 6] = [
    "config.json",
    "model.mpk",
    "checkpoint",
    "train",
    "valid",
    "experiment.log",
];

/// `config.json`: the model and training configuration of the run.
pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("config.json")
}

/// The final model record, without the `.mpk` extension the recorder adds.
pub fn model_path(dir: &Path) -> PathBuf {
    dir.join("model")
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
}
