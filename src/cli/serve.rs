//! `alexnet serve`: a run's model behind HTTP, with a page to try it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::os::unix::fs::PermissionsExt;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::{AutodiffBackend, Backend};
use clap::Args;

use super::{BackendArgs, ModelArgs};
use crate::backend::{Devices, TrainingTask};
use crate::serve::{self, Batching, Limits, ServeOptions};

/// Flags of `alexnet serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where to listen. The default answers this machine only; 0.0.0.0:PORT answers every
    /// network the machine is on (then set --token-file). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "IP:PORT")]
    pub addr: SocketAddr,
    /// The most images in one forward pass: requests that arrive together share it.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_batch: usize,
    /// The longest a request waits for others to share its forward pass (milliseconds).
    #[arg(long, default_value_t = 5, value_name = "MS")]
    pub max_wait_ms: u64,
    /// The most requests waiting for the model; beyond it requests get 503 and Retry-After.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub queue: usize,
    /// A file whose first line is the token clients must send (`Authorization: Bearer …`) on
    /// every route but /healthz and the page; also enables POST /v1/reload.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The largest request body (MiB); larger ones get 413.
    #[arg(long, default_value_t = 10, value_name = "MIB")]
    pub max_body_mib: usize,
    /// The longest a request may take, its upload included (seconds); slower ones get 408.
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    pub request_timeout_s: f64,
    #[command(flatten)]
    pub backend: BackendArgs,
}

impl ServeArgs {
    fn options<B: Backend>(&self, device: &B::Device) -> Result<ServeOptions> {
        self.check_bounds()?;
        Ok(ServeOptions {
            addr: self.addr,
            run: self.model.run::<B>(device)?,
            checkpoint: self.model.checkpoint.clone(),
            batching: Batching {
                max_batch: self.max_batch,
                max_wait: Duration::from_millis(self.max_wait_ms),
                queue: self.queue,
            },
            limits: Limits {
                body_bytes: self.max_body_mib << 20,
                request_timeout: Duration::from_secs_f64(self.request_timeout_s),
            },
            token: self.token_file.as_deref().map(read_token).transpose()?,
            backend: self.backend.kind().name().into(),
        })
    }
}

/// The most requests `--queue` may hold: each holds its decoded image (up to 64 MiB).
const MAX_QUEUE: usize = 65_536;
/// The largest `--max-body-mib`: an upload is held in memory whole.
const MAX_BODY_MIB: usize = 1024;
/// The longest `--request-timeout-s`: an hour.
const MAX_REQUEST_TIMEOUT_S: f64 = 3600.0;
/// Tokens shorter than this are guessable: `openssl rand -hex 32` writes 64 characters.
const MIN_TOKEN_CHARS: usize = 16;

impl ServeArgs {
    /// Every size and time flag within its bounds, each refusal with its reason.
    fn check_bounds(&self) -> Result<()> {
        if self.max_batch == 0 || self.queue == 0 {
            bail!("--max-batch and --queue must be at least 1");
        }
        if self.queue > MAX_QUEUE {
            bail!(
                "--queue {} is over {MAX_QUEUE}: each waiting request holds its image in \
                 memory; a full queue answers 503 with Retry-After instead",
                self.queue
            );
        }
        if !(self.request_timeout_s > 0.0 && self.request_timeout_s <= MAX_REQUEST_TIMEOUT_S) {
            bail!(
                "--request-timeout-s must be a number of seconds above 0 and at most \
                 {MAX_REQUEST_TIMEOUT_S}, not {}",
                self.request_timeout_s
            );
        }
        // Every request may wait this long for company; half the time limit leaves the rest
        // for the upload and the forward pass, so that waiting never times a request out.
        let most = self.request_timeout_s * 1000.0 / 2.0;
        if self.max_wait_ms as f64 > most {
            bail!(
                "--max-wait-ms {} is too long: every request may wait that long for others to \
                 share its forward pass, and must have time left within --request-timeout-s \
                 ({} s); use at most {most} (5 is the default)",
                self.max_wait_ms,
                self.request_timeout_s
            );
        }
        if !(1..=MAX_BODY_MIB).contains(&self.max_body_mib) {
            bail!(
                "--max-body-mib must lie in 1..={MAX_BODY_MIB}, not {}: an upload is held in \
                 memory whole",
                self.max_body_mib
            );
        }
        Ok(())
    }
}

/// The token in `path`: its first line, which must not be empty. A short token, or a file
/// other users may read, is taken with a warning.
fn read_token(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the --token-file {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    let make = format!("e.g. `openssl rand -hex 32 > {}`", path.display());
    if token.is_empty() {
        bail!(
            "the --token-file {} is empty: write a token on its first line ({make})",
            path.display()
        );
    }
    if token.chars().count() < MIN_TOKEN_CHARS {
        eprintln!(
            "warning: the token in {} has {} characters, which can be guessed; use at least \
             {MIN_TOKEN_CHARS} ({make})",
            path.display(),
            token.chars().count()
        );
    }
    let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
    if mode & 0o077 != 0 {
        eprintln!(
            "warning: the --token-file {} can be read by other users of this machine (mode \
             {:o}); `chmod 600 {}` keeps the token yours",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(token.to_string())
}

/// The server on the chosen backend.
pub struct ServeTask<'a>(pub &'a ServeArgs);

/// On the autodiff form of the backend, for `/v1/explain`'s gradient.
impl TrainingTask for ServeTask<'_> {
    type Output = Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Devices<B>) -> Result<()> {
        serve::serve::<B>(self.0.options::<B>(&devices.main)?, devices.main)
    }
}
