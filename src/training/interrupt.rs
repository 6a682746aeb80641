//! Ctrl-C: the first one stops training after the current batch (keeping every complete
//! checkpoint), a second one exits at once.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::train::Interrupter;

/// Training was stopped before its last epoch, by Ctrl-C or the dashboard's quit key.
#[derive(Debug, thiserror::Error)]
#[error(
    "training interrupted{during}; {kept}. Resume with: alexnet train --resume --artifact-dir {dir}"
)]
pub struct Interrupted {
    /// ` during epoch N`, when known.
    pub during: String,
    /// Which checkpoint survives.
    pub kept: String,
    /// The artifact directory, as the user would type it.
    pub dir: String,
}

static PRESSED_ONCE: AtomicBool = AtomicBool::new(false);

/// Routes SIGINT to `interrupter`. Only the first call in a process installs the handler.
pub fn install(interrupter: Interrupter) {
    let _ = ctrlc::try_set_handler(move || {
        if PRESSED_ONCE.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting now; the last complete checkpoint is kept");
            std::process::exit(130);
        }
        interrupter.stop(Some("Ctrl-C"));
    });
}

/// The dashboard puts the terminal in raw mode, where Ctrl-C is a key press the dashboard
/// ignores; turning the terminal's signal keys back on makes Ctrl-C a SIGINT again.
pub fn keep_ctrl_c_as_signal() {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return;
    }
    // SAFETY: tcgetattr/tcsetattr on the process's own stdin with a zero-initialised struct
    // that tcgetattr fills; failures leave the terminal unchanged.
    unsafe {
        let mut attrs: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(libc::STDIN_FILENO, &mut attrs) == 0 && attrs.c_lflag & libc::ISIG == 0 {
            attrs.c_lflag |= libc::ISIG;
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &attrs);
        }
    }
}
