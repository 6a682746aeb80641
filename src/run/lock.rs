//! One training at a time per run directory: an OS advisory lock on `train.lock`, held while
//! `train` runs and released by the OS when the process ends, however it ends, so a stale lock
//! never needs removing by hand. A process that ends normally, an error included, also removes
//! the file (and the directory, when it made it and nothing else was written there). Readers
//! (`infer`, `eval`, `plot`, `report`) take no lock: every record appears whole, by rename.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::RunDir;

/// The held lock; dropping it removes the lock file and releases the directory.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    /// The run directory, when this lock created it.
    created: Option<PathBuf>,
}

impl Drop for RunLock {
    /// Removes the file while still holding it, so that no other process can be holding the
    /// same path meanwhile; a process that opened the old file finds it unlinked and retries.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
        if let Some(dir) = &self.created {
            // Fails, as it should, when anything was written there.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Whether `file` is still the one at `path` (not unlinked by a holder that finished).
fn still_linked(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(named)) => (held.dev(), held.ino()) == (named.dev(), named.ino()),
        _ => false,
    }
}

/// Now as RFC 3339 to the second (`2026-11-30T10:46:17Z`), in local time where it is known.
fn now() -> String {
    let now = time::OffsetDateTime::now_local().unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl RunDir {
    /// The lock file.
    fn lock_file(&self) -> std::path::PathBuf {
        self.path().join("train.lock")
    }

    /// Takes the directory for one training process (creating it), or says who holds it.
    pub fn lock(&self) -> Result<RunLock> {
        let created = (!self.path().exists()).then(|| self.path().to_path_buf());
        self.create()?;
        let path = self.lock_file();
        // A holder that finishes unlinks the file it locked: lock the file at the path now.
        for _ in 0..100 {
            let file = self.try_lock_file(&path)?;
            if still_linked(&file, &path) {
                return self.hold(file, path, created);
            }
        }
        bail!("cannot lock {}: it keeps being replaced", path.display())
    }

    /// Opens and locks the lock file, or says who holds it.
    fn try_lock_file(&self, path: &Path) -> Result<File> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                bail!(
                    "{} is in use by another training ({}); wait for it to finish or stop it, \
                     or choose another --artifact-dir",
                    self.path().display(),
                    match holder.is_empty() {
                        true => "a process that is starting",
                        false => holder,
                    }
                );
            }
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        Ok(file)
    }

    /// Writes who holds the locked `file`.
    fn hold(&self, mut file: File, path: PathBuf, created: Option<PathBuf>) -> Result<RunLock> {
        let holder = format!("pid {}, started {}", std::process::id(), now());
        let lock = RunLock {
            file: file.try_clone()?,
            path,
            created,
        };
        file.set_len(0)
            .and_then(|_| file.write_all(holder.as_bytes()))
            .with_context(|| format!("cannot write the lock file {}", lock.path.display()))?;
        Ok(lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("run"));
        let held = run.lock().unwrap();
        let err = run.lock().unwrap_err().to_string();
        assert!(err.contains("is in use by another training"), "{err}");
        assert!(
            err.contains(&format!("pid {}, started 20", std::process::id())),
            "{err}"
        );
        drop(held);
        assert!(
            !dir.path().join("run").exists(),
            "the lock and the directory it made are gone"
        );
        let held = run.lock().expect("free again once released");
        std::fs::write(dir.path().join("run/config.json"), "{}").unwrap();
        drop(held);
        assert!(!dir.path().join("run/train.lock").exists());
        assert!(
            dir.path().join("run/config.json").exists(),
            "a directory with a run stays"
        );
    }

    #[test]
    fn a_lock_held_on_an_unlinked_file_does_not_hold_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let path = dir.path().join("train.lock");
        // A process that opened the file just before its holder finished and unlinked it.
        let stale = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        stale.try_lock().unwrap();
        let held = run.lock().expect("the lock at the path now is free");
        assert!(still_linked(&held.file, &path));
        drop(stale);
    }
}
