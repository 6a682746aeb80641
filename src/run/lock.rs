//! One training at a time per run directory: an OS advisory lock on `train.lock`, held while
//! `train` runs and released by the OS when the process ends, however it ends, so a stale lock
//! never needs removing by hand. Readers (`infer`, `eval`, `plot`, `report`) take no lock: every
//! record appears whole, by rename.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};

use anyhow::{Context, Result, bail};

use super::RunDir;

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
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
        self.create()?;
        let path = self.lock_file();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
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
        let holder = format!("pid {}, started {}", std::process::id(), now());
        file.set_len(0)
            .and_then(|_| file.write_all(holder.as_bytes()))
            .with_context(|| format!("cannot write the lock file {}", path.display()))?;
        Ok(RunLock { _file: file })
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
        run.lock().expect("free again once released");
    }
}
