//! Record files: the recorder of every record this crate writes (named MessagePack, f32, never
//! half-written under its final name), and loading a network from a final model or a training
//! checkpoint.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use alexnet_model::AlexNet;
use anyhow::anyhow;
use burn::module::Module;
use burn::record::{FileRecorder, FullPrecisionSettings, Recorder, RecorderError};
use burn::tensor::backend::Backend;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Extension of every record file.
const EXTENSION: &str = "mpk";

/// The three records burn-train's checkpointer writes for an epoch.
pub const CHECKPOINT_PARTS: [&str; 3] = ["model", "optim", "scheduler"];

/// The recorder of every record this crate writes.
pub fn recorder() -> AtomicMpkRecorder {
    AtomicMpkRecorder
}

/// Writes the same bytes as Burn's `NamedMpkFileRecorder<FullPrecisionSettings>` (named
/// MessagePack, f32), but into `NAME.mpk.partial` first, synced to disk and then renamed over
/// `NAME.mpk`: a crash, a kill or a full disk leaves the previous file intact.
#[derive(Debug, Default, Clone, Copy)]
pub struct AtomicMpkRecorder;

fn unknown(context: &str, path: &Path, err: impl std::fmt::Display) -> RecorderError {
    RecorderError::Unknown(format!("{context} {}: {err}", path.display()))
}

/// The `.partial` file a record is written to before it is renamed into place.
pub fn partial_path(final_path: &Path) -> PathBuf {
    final_path.with_extension(format!("{EXTENSION}.partial"))
}

/// A writer that keeps the I/O error MessagePack's encoder would otherwise hide behind
/// "error while writing multi-byte MessagePack value".
struct ErrorKeepingWriter<W> {
    inner: W,
    error: Option<std::io::Error>,
}

impl<W: Write> Write for ErrorKeepingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner
            .write(buf)
            .inspect_err(|e| self.error = Some(std::io::Error::new(e.kind(), e.to_string())))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner
            .flush()
            .inspect_err(|e| self.error = Some(std::io::Error::new(e.kind(), e.to_string())))
    }
}

fn write_atomically<I: Serialize>(item: &I, path: &Path) -> Result<(), RecorderError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| unknown("cannot create", parent, e))?;
    }
    let partial = partial_path(path);
    let write = || -> Result<(), RecorderError> {
        let file = File::create(&partial).map_err(|e| unknown("cannot create", &partial, e))?;
        let mut writer = ErrorKeepingWriter {
            inner: BufWriter::new(file),
            error: None,
        };
        let encoded = rmp_serde::encode::write_named(&mut writer, item);
        let flushed = writer.flush();
        if let Some(err) = writer.error.take() {
            return Err(unknown("cannot write", &partial, err));
        }
        encoded.map_err(|e| unknown("cannot write", &partial, e))?;
        flushed.map_err(|e| unknown("cannot write", &partial, e))?;
        let file = writer
            .inner
            .into_inner()
            .map_err(|e| unknown("cannot write", &partial, e.error()))?;
        file.sync_all()
            .map_err(|e| unknown("cannot sync", &partial, e))?;
        fs::rename(&partial, path).map_err(|e| unknown("cannot rename into", path, e))
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&partial);
    })
}

impl<B: Backend> Recorder<B> for AtomicMpkRecorder {
    type Settings = FullPrecisionSettings;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, file: PathBuf) -> Result<(), RecorderError> {
        write_atomically(&item, &file.with_extension(EXTENSION))
    }

    fn load_item<I: DeserializeOwned>(&self, file: &mut PathBuf) -> Result<I, RecorderError> {
        file.set_extension(EXTENSION);
        let opened = File::open(&*file).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RecorderError::FileNotFound(file.display().to_string()),
            _ => unknown("cannot open", file, e),
        })?;
        rmp_serde::decode::from_read(BufReader::new(opened))
            .map_err(|e| unknown("unreadable record", file, e))
    }
}

impl<B: Backend> FileRecorder<B> for AtomicMpkRecorder {
    fn file_extension() -> &'static str {
        EXTENSION
    }
}

/// What the Learner checkpoints: training's `Classifier`, whose only recorded field is the
/// network (its loss guard is `#[module(skip)]`). Declared here so that loading a checkpoint
/// needs no training code; a test in `training` keeps the two layouts the same.
#[derive(Module, Debug)]
pub struct CheckpointLayout<B: Backend> {
    /// The network.
    pub net: AlexNet<B>,
}

/// Loads `path` into `fresh`'s architecture, as a final model record (`model.mpk`) or, failing
/// that, as a training checkpoint (`checkpoint/model-N.mpk`).
pub fn load_net<B: Backend>(
    fresh: &AlexNet<B>,
    path: &Path,
    device: &B::Device,
) -> anyhow::Result<AlexNet<B>> {
    let bare_err = match fresh.clone().load_file(path, &recorder(), device) {
        Ok(net) => return Ok(net),
        Err(err) => err,
    };
    CheckpointLayout { net: fresh.clone() }
        .load_file(path, &recorder(), device)
        .map(|c| c.net)
        .map_err(|_| {
            let reason = bare_err.to_string();
            anyhow!(
                "cannot load {}: not a readable AlexNet record ({}); the file is truncated, \
                 corrupt or from another program",
                path.display(),
                reason.lines().next().unwrap_or("unknown error")
            )
        })
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::record::NamedMpkFileRecorder;

    #[test]
    fn records_load_with_burns_own_recorder_and_leave_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let device = Default::default();
        let linear: Linear<Flex> = LinearConfig::new(3, 2).init(&device);
        // Read first: a lazily initialised parameter and its clone would draw different values.
        let saved = linear.weight.val().into_data();
        linear
            .save_file(dir.path().join("lin"), &AtomicMpkRecorder)
            .unwrap();
        assert!(!partial_path(&dir.path().join("lin.mpk")).exists());
        let burns = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let loaded = LinearConfig::new(3, 2)
            .init::<Flex>(&device)
            .load_file(dir.path().join("lin"), &burns, &device)
            .unwrap();
        assert_eq!(loaded.weight.val().into_data(), saved);
    }

    #[test]
    fn truncated_records_are_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let device = Default::default();
        let linear: Linear<Flex> = LinearConfig::new(30, 20).init(&device);
        linear
            .save_file(dir.path().join("lin"), &AtomicMpkRecorder)
            .unwrap();
        let path = dir.path().join("lin.mpk");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let result = LinearConfig::new(30, 20).init::<Flex>(&device).load_file(
            dir.path().join("lin"),
            &AtomicMpkRecorder,
            &device,
        );
        assert!(result.is_err());
    }
}
