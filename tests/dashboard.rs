//! burn-train's TUI dashboard: `alexnet train` inside a pseudo-terminal draws it, finishes, and
//! gives the terminal back.

mod common;

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

#[test]
fn dashboard_draws_in_a_terminal_and_the_run_ends_cleanly() {
    let data = common::real_data_dir();
    let dir = tempfile::tempdir().unwrap();
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
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--limit-train",
        "256",
        "--limit-test",
        "64",
        "--data-dir",
        data.to_str().unwrap(),
        "--artifact-dir",
        dir.path().to_str().unwrap(),
    ]);
    cmd.env("TERM", "xterm-256color");
    let mut child = pty
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

    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("training in the terminal did not end within 300 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_millis(500));
    drop(pty.master);
    let text = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();

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
        text.contains("\x1b[?1049h") && text.contains("\x1b[?1049l"),
        "alternate screen not left:\n{text}"
    );
    // ...and no per-epoch text lines were mixed into the dashboard, but the final lines follow it.
    assert!(!text.contains("epoch 1/2:"), "{text}");
    let after = &text[text.rfind("\x1b[?1049l").unwrap()..];
    assert!(
        after.contains("examples/sec on cpu"),
        "final lines missing after the dashboard:\n{after}"
    );
    assert!(dir.path().join("model.mpk").exists());
}
