//! Record files: the recorder of every record this crate writes (named MessagePack, f32, never
//! half-written under its final name), and loading a network from a final model or a training
//! checkpoint.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use alexnet_model::AlexNet;
use burn::module::Module;
use burn::record::{FileRecorder, FullPrecisionSettings, Recorder, RecorderError};
use burn::tensor::backend::Backend;
use serde::Serialize;
use serde::de::DeserializeOwned;
use xxhash_rust::xxh3::Xxh3;

/// Extension of every record file.
const EXTENSION: &str = "mpk";

/// The three records burn-train's checkpointer writes for an epoch.
pub const CHECKPOINT_PARTS: [&str; 3] = ["model", "optim", "scheduler"];

/// The recorder of every record this crate writes.
pub fn recorder() -> AtomicMpkRecorder {
    AtomicMpkRecorder
}

/// Writes the same MessagePack as Burn's `NamedMpkFileRecorder<FullPrecisionSettings>` (named,
/// f32), with two differences:
///
/// - It goes into `NAME.mpk.partial` first, synced to disk, renamed over `NAME.mpk`, and the
///   directory synced: a crash, a kill or a full disk leaves the previous file intact.
/// - A 16-byte trailer follows it: a magic number and the XXH3-64 checksum of the MessagePack
///   bytes, checked on every load, so damage inside the float data is found rather than
///   predicted with. In the file itself rather than a sidecar, so that the record and its
///   checksum are renamed into place together. MessagePack readers stop at the end of the
///   value, so Burn's own recorder still loads these files.
#[derive(Debug, Default, Clone, Copy)]
pub struct AtomicMpkRecorder;

fn unknown(context: &str, path: &Path, err: impl std::fmt::Display) -> RecorderError {
    RecorderError::Unknown(format!("{context} {}: {err}", path.display()))
}

/// The `.partial` file a file is written to before it is renamed into place (`model.mpk` ->
/// `model.mpk.partial`); records, the journal, the report and the curves all use it.
pub fn partial_path(final_path: &Path) -> PathBuf {
    let extension = final_path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    final_path.with_extension(format!("{extension}.partial"))
}

/// The trailer's first 8 bytes; the checksum follows, little-endian.
const CHECKSUM_MAGIC: &[u8; 8] = b"AXNTXXH3";

/// Whether a record's checksum was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The trailer's checksum matches the record.
    Verified,
    /// A record written before checksums existed: loaded unverified.
    Missing,
}

/// A writer that hashes what it writes and keeps the I/O error MessagePack's encoder would
/// otherwise hide behind "error while writing multi-byte MessagePack value".
struct RecordWriter<W> {
    inner: W,
    hasher: Xxh3,
    error: Option<std::io::Error>,
}

impl<W: Write> Write for RecordWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self
            .inner
            .write(buf)
            .inspect_err(|e| self.error = Some(std::io::Error::new(e.kind(), e.to_string())))?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner
            .flush()
            .inspect_err(|e| self.error = Some(std::io::Error::new(e.kind(), e.to_string())))
    }
}

fn write_record<I: Serialize>(item: &I, path: &Path) -> Result<(), RecorderError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| unknown("cannot create", parent, e))?;
    }
    let partial = partial_path(path);
    let write = || -> Result<(), RecorderError> {
        let file = File::create(&partial).map_err(|e| unknown("cannot create", &partial, e))?;
        let mut writer = RecordWriter {
            inner: BufWriter::new(file),
            hasher: Xxh3::new(),
            error: None,
        };
        let encoded = rmp_serde::encode::write_named(&mut writer, item);
        let digest = writer.hasher.digest();
        let trailer = writer
            .inner
            .write_all(CHECKSUM_MAGIC)
            .and_then(|_| writer.inner.write_all(&digest.to_le_bytes()));
        let flushed = trailer.and_then(|_| writer.flush());
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
        fs::rename(&partial, path).map_err(|e| unknown("cannot rename into", path, e))?;
        sync_dir(path);
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&partial);
    })
}

/// Syncs the directory holding `path`, so that a rename survives a power cut; best effort (some
/// file systems cannot sync a directory).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().and_then(|d| File::open(d).ok()) {
        let _ = dir.sync_all();
    }
}

/// A reader that hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Xxh3,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

/// The one-line error of a record whose checksum does not match.
pub const CHECKSUM_MISMATCH: &str = "failed its checksum: the file is damaged";

/// Why a record's file cannot be read, before Burn sees its contents.
#[derive(Debug)]
enum ReadFailure {
    NotFound,
    Open(std::io::Error),
    /// The MessagePack does not decode; in plain words.
    Decode(String),
    Checksum,
}

impl ReadFailure {
    /// The failure as Burn's recorder error, `file` named.
    fn into_recorder_error(self, file: &Path) -> RecorderError {
        match self {
            Self::NotFound => RecorderError::FileNotFound(file.display().to_string()),
            Self::Open(e) => unknown("cannot open", file, e),
            Self::Decode(why) => unknown("unreadable record", file, why),
            Self::Checksum => {
                RecorderError::Unknown(format!("{} {CHECKSUM_MISMATCH}", file.display()))
            }
        }
    }
}

/// Decodes the record in `file` and checks its trailer.
fn decode_record<I: DeserializeOwned>(file: &Path) -> Result<(I, Checksum), ReadFailure> {
    let opened = File::open(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReadFailure::NotFound,
        _ => ReadFailure::Open(e),
    })?;
    let mut reader = HashingReader {
        inner: BufReader::new(opened),
        hasher: Xxh3::new(),
    };
    let item = rmp_serde::decode::from_read(&mut reader)
        .map_err(|e| ReadFailure::Decode(decode_error(&e)))?;
    let digest = reader.hasher.digest();
    let mut tail = Vec::new();
    reader
        .inner
        .read_to_end(&mut tail)
        .map_err(ReadFailure::Open)?;
    if tail.is_empty() {
        return Ok((item, Checksum::Missing));
    }
    let expected = (tail.len() == 16 && tail[..8] == CHECKSUM_MAGIC[..])
        .then(|| u64::from_le_bytes(tail[8..].try_into().expect("8 bytes")));
    match expected == Some(digest) {
        true => Ok((item, Checksum::Verified)),
        false => Err(ReadFailure::Checksum),
    }
}

/// [`decode_record`] with Burn's error type.
fn read_record<I: DeserializeOwned>(file: &Path) -> Result<(I, Checksum), RecorderError> {
    decode_record(file).map_err(|failure| failure.into_recorder_error(file))
}

/// A MessagePack decoding error in plain words.
fn decode_error(err: &rmp_serde::decode::Error) -> String {
    use rmp_serde::decode::Error;
    match err {
        Error::InvalidMarkerRead(io) | Error::InvalidDataRead(io)
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            "it ends early (cut short while it was written or copied)".into()
        }
        Error::InvalidMarkerRead(io) | Error::InvalidDataRead(io) => {
            format!("cannot read it: {io}")
        }
        other => format!("it is not a record of this program ({other})"),
    }
}

/// Why `path` does not load, in plain words: what reading it ourselves finds, else the first
/// line of Burn's error without its wrapping (Burn adds text about old record formats to every
/// failure, which is rarely the cause).
fn unreadable_reason(path: &Path, burn_error: &str) -> String {
    match decode_record::<serde::de::IgnoredAny>(path) {
        Err(ReadFailure::NotFound) => "there is no such file".into(),
        Err(ReadFailure::Open(e)) => format!("cannot read it: {e}"),
        Err(ReadFailure::Decode(why)) => why,
        Err(ReadFailure::Checksum) => CHECKSUM_MISMATCH.into(),
        Ok(_) => {
            let first = burn_error.lines().next().unwrap_or("unknown error");
            let plain = first
                .split_once("Unknown(\"")
                .map_or(first, |(_, inner)| inner.trim_end_matches("\")"));
            format!("it holds other layers than this network ({plain})")
        }
    }
}

/// A recorder error as one plain line (Burn's own display wraps ours as `Unknown("…")`).
pub fn describe(err: &RecorderError) -> String {
    match err {
        RecorderError::Unknown(message) => message.clone(),
        other => other.to_string(),
    }
}

/// Says once per process that records without a checksum load unverified.
fn note_missing_checksum(file: &Path) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        eprintln!(
            "note: {} has no checksum (written before records had one); it loads unverified",
            file.display()
        )
    });
}

impl<B: Backend> Recorder<B> for AtomicMpkRecorder {
    type Settings = FullPrecisionSettings;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, file: PathBuf) -> Result<(), RecorderError> {
        write_record(&item, &file.with_extension(EXTENSION))
    }

    fn load_item<I: DeserializeOwned>(&self, file: &mut PathBuf) -> Result<I, RecorderError> {
        file.set_extension(EXTENSION);
        let (item, checksum) = read_record(file)?;
        if checksum == Checksum::Missing {
            note_missing_checksum(file);
        }
        Ok(item)
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

/// Why a record does not load.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Its checksum does not match: the file was damaged after it was written.
    #[error("{} {CHECKSUM_MISMATCH}", .0.display())]
    Damaged(PathBuf),
    /// Not a record of this network at all.
    #[error(
        "cannot load {}: not a readable AlexNet record: {reason}",
        path.display()
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The first line of the decoder's error.
        reason: String,
    },
}

/// Loads `path` into `fresh`'s architecture, as a final model record (`model.mpk`) or, failing
/// that, as a training checkpoint (`checkpoint/model-N.mpk`).
pub fn load_net<B: Backend>(
    fresh: &AlexNet<B>,
    path: &Path,
    device: &B::Device,
) -> Result<AlexNet<B>, RecordError> {
    let bare_err = match fresh.clone().load_file(path, &recorder(), device) {
        Ok(net) => return Ok(net),
        Err(err) => err.to_string(),
    };
    if bare_err.contains(CHECKSUM_MISMATCH) {
        return Err(RecordError::Damaged(path.to_path_buf()));
    }
    CheckpointLayout { net: fresh.clone() }
        .load_file(path, &recorder(), device)
        .map(|c| c.net)
        .map_err(|_| RecordError::Unreadable {
            path: path.to_path_buf(),
            reason: unreadable_reason(path, &bare_err),
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

    #[test]
    fn damage_inside_the_values_fails_the_checksum_and_old_records_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let device = Default::default();
        let path = dir.path().join("lin.mpk");
        LinearConfig::new(30, 20)
            .init::<Flex>(&device)
            .save_file(&path, &AtomicMpkRecorder)
            .unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[bytes.len() - 16..bytes.len() - 8], CHECKSUM_MAGIC);
        let load = |bytes: &[u8]| {
            fs::write(&path, bytes).unwrap();
            read_record::<serde::de::IgnoredAny>(&path).map(|(_, checksum)| checksum)
        };
        assert_eq!(load(&bytes).unwrap(), Checksum::Verified);
        // Flip bits inside the float data: the MessagePack still decodes, the checksum does not.
        let mut damaged = bytes.clone();
        let middle = damaged.len() / 2;
        damaged[middle..middle + 8]
            .iter_mut()
            .for_each(|b| *b ^= 0x5a);
        let err = describe(&load(&damaged).unwrap_err());
        assert!(err.contains(CHECKSUM_MISMATCH), "{err}");
        // A record written before checksums: no trailer.
        assert_eq!(load(&bytes[..bytes.len() - 16]).unwrap(), Checksum::Missing);
    }
}
