//! `alexnet serve` as a child process on a free port of 127.0.0.1, its log kept as it writes
//! it, killed when dropped: the server of tests/serve.rs and tests/serve_browser.rs.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::alexnet;

/// A running `alexnet serve`.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// `alexnet serve` on a free port of 127.0.0.1 for `run_dir`, plus `extra`.
    pub fn start(run_dir: &Path, extra: &[&str]) -> Self {
        let mut child = alexnet()
            .args(["serve", "--addr", "127.0.0.1:0", "--artifact-dir"])
            .arg(run_dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (found, addr) = std::sync::mpsc::channel();
        let mut err = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut sent = false;
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut text = sink.lock().unwrap();
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                if !sent && let Some(at) = text.find("http://") {
                    let rest = &text[at + 7..];
                    if let Some(end) = rest.find('/') {
                        let _ = found.send(rest[..end].parse::<SocketAddr>().unwrap());
                        sent = true;
                    }
                }
            }
        });
        let addr = addr
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not start: {}", log.lock().unwrap()));
        Self { child, addr, log }
    }

    /// What it has written on stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends it `signal`.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits up to `secs` for the log to contain `text`.
    pub fn wait_for_log(&self, text: &str, secs: u64) {
        let start = Instant::now();
        while !self.log().contains(text) {
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "no `{text}` in the log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A prediction's `top` array as (label, probability) pairs, best first.
pub fn ranked(top: &Value) -> Vec<(String, f64)> {
    top.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["label"].as_str().unwrap().to_string(),
                p["probability"].as_f64().unwrap(),
            )
        })
        .collect()
}
