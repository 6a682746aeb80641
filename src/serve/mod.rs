//! `alexnet serve`: a run's model behind HTTP, on axum and tokio.
//!
//! One thread owns the model and answers queued requests in micro-batches ([`worker`]); the
//! routes read uploads in parallel and wait for its answers ([`http`], [`app`]). SIGHUP (or
//! `POST /v1/reload`) reloads the record; SIGTERM or Ctrl-C stops taking connections and
//! finishes the requests in flight.
//!
//! The connections are served by hyper directly rather than `axum::serve`, which has no
//! time limit for reading a request's headers: a client that never finishes them would hold
//! its connection for ever.

mod app;
mod http;
mod metrics;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

pub use app::{Limits, ModelInfo};
pub use worker::Batching;

use crate::inference::{CheckpointChoice, LoadedModel, Reader, load_model};
use crate::run::RunDir;
use app::{App, NoInvert, Parts};
use metrics::Metrics;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping server waits for the requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What `alexnet serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The run whose model is served.
    pub run: RunDir,
    /// Which of its records.
    pub checkpoint: CheckpointChoice,
    /// How requests are batched.
    pub batching: Batching,
    /// The limits of a request.
    pub limits: Limits,
    /// The bearer token every route but `/healthz` and the page requires.
    pub token: Option<String>,
    /// The backend's name, for `GET /v1/model`.
    pub backend: String,
}

/// Serves the chosen record of `options.run` on `device` until SIGTERM or Ctrl-C.
/// Runs on the autodiff form of the backend, so that `/v1/explain` can take Grad-CAM's one
/// gradient; predictions use the network without autodiff.
pub fn serve<A: AutodiffBackend>(options: ServeOptions, device: A::Device) -> Result<()> {
    let model = load_model::<A>(&options.run, &options.checkpoint, &device)?;
    model
        .config
        .check_batch(options.batching.max_batch, false)
        .map_err(|err| anyhow::anyhow!("--max-batch is too large: {err}"))?;
    let readers = (
        Reader::of(&model, false)?,
        Reader::of(&model, true).map_err(|e| NoInvert(format!("{e:#}"))),
    );
    let info = ModelInfo::of(&model, &options.backend, options.run.path().to_path_buf());
    let metrics = Arc::new(Metrics::new(options.batching.max_batch));
    let next = worker::NextModel::<A>::default();
    let reloader = reloader::<A>(&options, device.clone(), next.clone());
    // The model thread is not joined: by the time `listen` returns, the requests in flight
    // have their answers, and what is left of the thread ends with the process.
    let (queue, _model_thread) =
        worker::start(model, device, options.batching, next, metrics.clone());
    let app = Arc::new(App::new(Parts {
        queue,
        readers,
        info,
        reloader,
        token: options.token.clone(),
        limits: options.limits,
        metrics,
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(listen(app, options.addr))
}

/// Loads the run's record again on `device` and leaves it for the worker.
fn reloader<A: AutodiffBackend>(
    options: &ServeOptions,
    device: A::Device,
    next: worker::NextModel<A>,
) -> app::Reloader {
    let (run, choice, backend) = (
        options.run.clone(),
        options.checkpoint.clone(),
        options.backend.clone(),
    );
    Box::new(move || {
        let model: LoadedModel<A> = load_model(&run, &choice, &device)?;
        let info = ModelInfo::of(&model, &backend, run.path().to_path_buf());
        *next.lock().expect("not poisoned") = Some(model);
        Ok(info)
    })
}

/// What to say when the server answers beyond this machine (`ip` is not loopback) to anyone
/// (no token).
fn exposure_warning(ip: std::net::IpAddr, has_token: bool) -> Option<String> {
    (!ip.is_loopback() && !has_token).then(|| {
        format!(
            "listening on {ip} without a token: anyone on the networks this machine is on can \
             use the model and read /metrics; start it with --token-file FILE"
        )
    })
}

/// Accepts connections until SIGTERM or Ctrl-C, reloading on SIGHUP; then finishes the
/// requests in flight.
async fn listen(app: Arc<App>, addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}; pass another --addr (port 0 picks a free one)")
    })?;
    let bound = listener.local_addr()?;
    let info = app.info();
    eprintln!(
        "serving {} ({} classes, {} px) on http://{bound}/ — Ctrl-C stops, SIGHUP reloads",
        info.checkpoint.display(),
        info.classes.len(),
        info.image_size
    );
    if let Some(warning) = exposure_warning(bound.ip(), app.token().is_some()) {
        eprintln!("warning: {warning}");
    }
    let router = http::router(app.clone());
    let graceful = GracefulShutdown::new();
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .max_headers(http::HYPER_MAX_HEADERS)
                        .serve_connection(
                            TokioIo::new(stream),
                            TowerToHyperService::new(router.clone()),
                        );
                    let connection = graceful.watch(connection);
                    tokio::spawn(connection);
                }
                // Out of file descriptors and the like: keep serving the open connections.
                Err(err) => {
                    eprintln!("cannot accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = hangup.recv() => {
                let app = app.clone();
                tokio::spawn(async move { app.reload("SIGHUP").await });
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    app.stopping();
    drop(listener);
    eprintln!("stopping: finishing the requests in flight");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "stopped after {} s with requests still open",
            DRAIN_TIMEOUT.as_secs()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answering_beyond_this_machine_without_a_token_is_warned() {
        let any: std::net::IpAddr = "0.0.0.0".parse().unwrap();
        let warning = exposure_warning(any, false).unwrap();
        assert!(warning.contains("0.0.0.0 without a token"), "{warning}");
        assert!(exposure_warning(any, true).is_none());
        for loopback in ["127.0.0.1", "::1"] {
            assert!(exposure_warning(loopback.parse().unwrap(), false).is_none());
        }
        assert!(exposure_warning("192.168.1.5".parse().unwrap(), false).is_some());
    }
}
