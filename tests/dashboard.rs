//! burn-train's TUI dashboard: `alexnet train` inside a pseudo-terminal draws it, finishes or
//! stops on Ctrl-C, and gives the terminal back.

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, ExitStatus, MasterPty, PtySize, native_pty_system};

/// `alexnet train` running in a 140x40 pseudo-terminal, its screen output collected.
struct TerminalRun {
    child: Box<dyn Child + Send + Sync>,
    master: Box<dyn MasterPty + Send>,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl TerminalRun {
    fn start(dir: &std::path::Path, extra: &[&str]) -> Self {
        Self::start_with_env(dir, extra, &[])
    }

    /// Like [`Self::start`], with `env` set over `TERM=xterm-256color`.
    fn start_with_env(dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let data = common::synthetic_data_dir();
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 40,
                cols: 140,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pseudo-terminal");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_alexnet"));
        cmd.args([
            "train",
            "--resize",
            "65",
            "--batch-size",
            "32",
            "--limit-test",
            "64",
        ]);
        cmd.args([
            "--data-dir",
            data.to_str().unwrap(),
            "--artifact-dir",
            dir.to_str().unwrap(),
        ]);
        cmd.args(extra);
        cmd.env("TERM", "xterm-256color");
        for (key, value) in env {
            cmd.env(key, value);
        }
        let child = pty
            .slave
            .spawn_command(cmd)
            .expect("spawn alexnet in the pty");
        drop(pty.slave);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = pty.master.try_clone_reader().unwrap();
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            child,
            master: pty.master,
            screen,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    fn wait_for_text(&self, needle: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn type_keys(&mut self, keys: &[u8]) {
        let mut writer = self.master.take_writer().unwrap();
        writer.write_all(keys).unwrap();
        writer.flush().unwrap();
    }

    /// Waits for the exit, then returns the status and everything drawn.
    fn finish(mut self, secs: u64) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                self.child.kill().ok();
                panic!(
                    "training in the terminal did not end within {secs} s:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        std::thread::sleep(Duration::from_millis(500));
        (status, self.text())
    }
}

const ENTER_ALTERNATE: &str = "\x1b[?1049h";
const LEAVE_ALTERNATE: &str = "\x1b[?1049l";

#[test]
fn dashboard_draws_in_a_terminal_and_the_run_ends_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let run = TerminalRun::start(dir.path(), &["--epochs", "2", "--limit-train", "256"]);
    let (status, text) = run.finish(300);

    assert!(status.success(), "exit {status:?}; screen:\n{text}");
    // The dashboard's panels and our metrics were drawn...
    for name in [
        "Loss",
        "Accuracy",
        "Learning Rate",
        "Examples per sec",
        "Epoch",
    ] {
        assert!(text.contains(name), "{name} not drawn; screen:\n{text}");
    }
    // ...in the alternate screen, which was left again (terminal restored)...
    assert!(
        text.contains(ENTER_ALTERNATE) && text.contains(LEAVE_ALTERNATE),
        "{text}"
    );
    // ...with no epoch text lines mixed into the dashboard, and the final lines after it.
    assert!(!text.contains("epoch 1/2:"), "{text}");
    let after = &text[text.rfind(LEAVE_ALTERNATE).unwrap()..];
    assert!(
        after.contains("examples/sec on cpu"),
        "final lines missing after the dashboard:\n{after}"
    );
    assert!(dir.path().join("model.mpk").exists());
}

#[test]
fn ctrl_c_in_the_dashboard_stops_cleanly_and_restores_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = TerminalRun::start(dir.path(), &["--epochs", "20", "--limit-train", "512"]);
    assert!(
        run.wait_for_text("Examples per sec", 240),
        "dashboard never drawn:\n{}",
        run.text()
    );
    run.type_keys(b"\x03");
    let (status, text) = run.finish(120);

    assert_eq!(status.exit_code(), 130, "screen:\n{text}");
    let after = &text[text.rfind(LEAVE_ALTERNATE).expect("terminal restored")..];
    assert!(after.contains("training interrupted"), "{after}");
    assert!(
        after.contains("alexnet train --resume --artifact-dir"),
        "{after}"
    );
    assert!(!text.contains("panicked"), "{text}");
    assert!(!dir.path().join("model.mpk").exists());
}

/// Flags and environment of one run.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

#[test]
fn no_dashboard_no_color_and_dumb_terminals_get_plain_lines() {
    let cases: [Case; 3] = [
        (&["--no-dashboard"], &[]),
        (&[], &[("NO_COLOR", "1")]),
        (&[], &[("TERM", "dumb")]),
    ];
    for (flags, env) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--epochs", "1", "--limit-train", "128"];
        args.extend_from_slice(flags);
        let run = TerminalRun::start_with_env(dir.path(), &args, env);
        let (status, text) = run.finish(300);
        assert!(
            status.success(),
            "{flags:?} {env:?}: exit {status:?}\n{text}"
        );
        assert!(
            !text.contains(ENTER_ALTERNATE),
            "{flags:?} {env:?}: dashboard drawn\n{text}"
        );
        assert!(
            text.contains("epoch 1/1: loss "),
            "{flags:?} {env:?}:\n{text}"
        );
    }
}
