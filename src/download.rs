//! Fetching a weights file over HTTP(S) into a cache folder, as `torch.hub` fetches
//! torchvision's: a progress bar, resume of a partial download (an HTTP range request), the
//! SHA-256 prefix in the file's name checked, and the file moved into place only when whole and
//! checked. Burn has no downloader for a user's files (burn-dataset's fetches its own datasets,
//! without resume or a hash check), so this one is ours, on ureq.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// torchvision's ImageNet weights for `alexnet()` (`AlexNet_Weights.IMAGENET1K_V1`).
pub const TORCHVISION_ALEXNET: &str =
    "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth";

/// How long a server may take to accept the connection, and then between two reads.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes per read and per progress update.
const CHUNK: usize = 1 << 16;

/// Why a download failed; each says what to do next.
#[derive(Debug, Error)]
pub enum DownloadError {
    #[error("{url} names no file; give the URL of a weights file, such as {TORCHVISION_ALEXNET}")]
    NoFileName { url: String },
    #[error(
        "cannot reach {url} ({reason}); check the network connection, or download the file on \
         another machine and pass its path to --from"
    )]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}; check the URL")]
    Status { url: String, status: u16 },
    #[error(
        "the download of {url} was cut short at {got} of {expected} bytes ({reason}); run the \
         same command again to resume from there"
    )]
    CutShort {
        url: String,
        got: u64,
        expected: String,
        reason: String,
    },
    #[error(
        "{url} is not the file its name promises: its SHA-256 starts {actual}, the name says \
         {promised}; removed it, run the same command again to download it afresh, or check the URL"
    )]
    WrongHash {
        url: String,
        actual: String,
        promised: String,
    },
    #[error("another alexnet process is downloading {}; wait for it to finish", .part.display())]
    Busy { part: PathBuf },
    #[error("cannot write {}: {source}; pick another --cache-dir", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// What a call to [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The whole, checked file in the cache folder.
    pub path: PathBuf,
    /// Bytes transferred now: 0 when the cache already held the file.
    pub downloaded: u64,
    /// Bytes a partial download already held when this one resumed it.
    pub resumed_from: u64,
    /// The SHA-256 prefix the name promised and the downloaded file has, if the name carries one
    /// (`None` for a file already in the cache: it was checked when it came).
    pub checked_hash: Option<String>,
}

/// Whether `from` is a URL this module fetches rather than a local path.
pub fn is_url(from: &str) -> bool {
    from.starts_with("https://") || from.starts_with("http://")
}

/// The default cache folder: the user's cache directory (`~/.cache` on Linux) + `alexnet-burn`.
pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("alexnet-burn")
}

/// `url`'s file in `cache_dir`: the cached copy, or a download (resumed where a previous one
/// stopped) checked against the SHA-256 prefix its name carries, as torch.hub's names do
/// (`alexnet-owt-7be5be79.pth`). A progress bar is drawn when `progress` and stderr is a terminal.
pub fn fetch(url: &str, cache_dir: &Path, progress: bool) -> Result<Fetched, DownloadError> {
    let name = file_name(url)?;
    let path = cache_dir.join(name);
    if path.is_file() {
        // As torch.hub does: a file in the cache was checked when it was downloaded.
        return Ok(Fetched {
            path,
            downloaded: 0,
            resumed_from: 0,
            checked_hash: None,
        });
    }
    let checked_hash = promised_hash(name).map(str::to_string);
    let part = cache_dir.join(format!("{name}.part"));
    // Nothing is written before the server answers.
    let held = fs::metadata(&part).map_or(0, |m| m.len());
    let response = request(url, held)?;
    fs::create_dir_all(cache_dir).map_err(io_error(cache_dir))?;
    let mut file = open_locked(&part)?;
    let (resumed_from, downloaded) = transfer(url, response, &mut file, &part, progress)?;
    check_hash(url, &part, checked_hash.as_deref())?;
    fs::rename(&part, &path).map_err(io_error(&path))?;
    Ok(Fetched {
        path,
        downloaded,
        resumed_from,
        checked_hash,
    })
}

/// The last segment of the URL's path, without query or fragment.
fn file_name(url: &str) -> Result<&str, DownloadError> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
    let name = after_host.rsplit('/').next().unwrap_or("");
    let usable = !name.is_empty() && name != "." && name != ".." && !name.contains('\\');
    match usable {
        true => Ok(name),
        false => Err(DownloadError::NoFileName { url: url.into() }),
    }
}

/// torch.hub's rule: the lower-case hex digits after the name's last `-` and before its first
/// `.` are the start of the file's SHA-256 (`alexnet-owt-7be5be79.pth`). Fewer than 6 digits are
/// taken for a word, not a hash.
fn promised_hash(name: &str) -> Option<&str> {
    let stem = name.split('.').next()?;
    let (_, hex) = stem.rsplit_once('-')?;
    let is_hex = hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    (hex.len() >= 6 && is_hex).then_some(hex)
}

/// The partial file, opened for appending and locked against a second process.
fn open_locked(part: &Path) -> Result<File, DownloadError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(part)
        .map_err(io_error(part))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(DownloadError::Busy { part: part.into() }),
        Err(TryLockError::Error(e)) => Err(io_error(part)(e)),
    }
}

/// Appends the response's body to `file` (all of it, from zero, when the server ignored the
/// range); returns the bytes the part held before and the bytes received.
fn transfer(
    url: &str,
    response: ureq::Response,
    file: &mut File,
    part: &Path,
    progress: bool,
) -> Result<(u64, u64), DownloadError> {
    let held = file.metadata().map_err(io_error(part))?.len();
    let resumed_from = match response.status() {
        206 if content_range_start(&response) == Some(held) => held,
        // Bytes from elsewhere than the part's end: fetch the whole file instead.
        206 => return transfer(url, request(url, 0)?, file, part, progress),
        _ => {
            file.set_len(0).map_err(io_error(part))?;
            0
        }
    };
    let total = total_length(&response, resumed_from);
    let bar = progress_bar(total, resumed_from, progress);
    let received = copy(url, response.into_reader(), file, part, resumed_from, &bar)?;
    bar.finish_and_clear();
    let got = resumed_from + received;
    if let Some(expected) = total.filter(|&t| got < t) {
        return Err(cut_short(
            url,
            got,
            Some(expected),
            "the server closed the connection",
        ));
    }
    file.sync_all().map_err(io_error(part))?;
    Ok((resumed_from, received))
}

/// GET `url`, from byte `from` on when a part is already held.
fn request(url: &str, from: u64) -> Result<ureq::Response, DownloadError> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout_read(READ_TIMEOUT)
        .try_proxy_from_env(true)
        .build();
    let mut get = agent.get(url);
    if from > 0 {
        get = get.set("Range", &format!("bytes={from}-"));
    }
    match get.call() {
        Ok(response) => Ok(response),
        // The part is already whole (or longer than the file): start again from zero.
        Err(ureq::Error::Status(416, _)) if from > 0 => request(url, 0),
        Err(ureq::Error::Status(status, _)) => Err(DownloadError::Status {
            url: url.into(),
            status,
        }),
        Err(ureq::Error::Transport(t)) => Err(DownloadError::Unreachable {
            url: url.into(),
            reason: t.to_string(),
        }),
    }
}

/// Where a partial response starts: `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(response: &ureq::Response) -> Option<u64> {
    let range = response.header("Content-Range")?.strip_prefix("bytes ")?;
    range.split('-').next()?.parse().ok()
}

/// The file's whole length: from `Content-Range` on a resumed download, else `Content-Length`.
fn total_length(response: &ureq::Response, resumed_from: u64) -> Option<u64> {
    let whole = response
        .header("Content-Range")
        .and_then(|range| range.rsplit('/').next())
        .and_then(|total| total.parse().ok());
    let length = response
        .header("Content-Length")
        .and_then(|l| l.parse::<u64>().ok());
    whole.or(length.map(|l| l + resumed_from))
}

fn progress_bar(total: Option<u64>, start: u64, shown: bool) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::no_length(),
    };
    let style = ProgressStyle::with_template(
        "{bytes}/{total_bytes} [{bar:30}] {binary_bytes_per_sec}, {eta} left",
    )
    .expect("the template is valid")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_position(start);
    bar
}

/// Copies the body into `file`; a read that fails keeps what came so far, for a resume.
fn copy(
    url: &str,
    mut body: impl Read,
    file: &mut File,
    part: &Path,
    start: u64,
    bar: &ProgressBar,
) -> Result<u64, DownloadError> {
    let mut buffer = vec![0u8; CHUNK];
    let mut received = 0u64;
    loop {
        let n = match body.read(&mut buffer) {
            Ok(0) => return Ok(received),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = file.sync_all();
                let expected = bar.length();
                return Err(cut_short(url, start + received, expected, &e.to_string()));
            }
        };
        file.write_all(&buffer[..n]).map_err(io_error(part))?;
        received += n as u64;
        bar.inc(n as u64);
    }
}

fn cut_short(url: &str, got: u64, expected: Option<u64>, reason: &str) -> DownloadError {
    DownloadError::CutShort {
        url: url.into(),
        got,
        expected: expected.map_or("an unknown number of".into(), |e| e.to_string()),
        reason: reason.into(),
    }
}

/// The whole file against the hash its name promises; a mismatch removes it.
fn check_hash(url: &str, part: &Path, promised: Option<&str>) -> Result<(), DownloadError> {
    let Some(promised) = promised else {
        return Ok(());
    };
    let actual = sha256_hex(part).map_err(io_error(part))?;
    if actual.starts_with(promised) {
        return Ok(());
    }
    let _ = fs::remove_file(part);
    Err(DownloadError::WrongHash {
        url: url.into(),
        actual: actual[..promised.len()].into(),
        promised: promised.into(),
    })
}

fn sha256_hex(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        match file.read(&mut buffer)? {
            0 => break,
            n => hasher.update(&buffer[..n]),
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_in_a_name_follows_torch_hubs_rule() {
        assert_eq!(promised_hash("alexnet-owt-7be5be79.pth"), Some("7be5be79"));
        assert_eq!(promised_hash("resnet18-f37072fd.pth"), Some("f37072fd"));
        assert_eq!(promised_hash("alexnet-owt.pth"), None);
        assert_eq!(
            promised_hash("weights-abc.pth"),
            None,
            "too short for a hash"
        );
        assert_eq!(
            promised_hash("model-7BE5BE79.pth"),
            None,
            "upper case is not torch.hub's"
        );
        assert_eq!(promised_hash("model.safetensors"), None);
    }

    #[test]
    fn a_urls_file_name_is_its_last_path_segment() {
        let name = |url| file_name(url).ok();
        assert_eq!(name(TORCHVISION_ALEXNET), Some("alexnet-owt-7be5be79.pth"));
        assert_eq!(name("http://127.0.0.1:8/a/b.pth?x=1#y"), Some("b.pth"));
        assert_eq!(name("https://example.com/"), None);
        assert_eq!(name("https://example.com"), None);
        assert_eq!(name("https://example.com/models/.."), None);
    }
}
