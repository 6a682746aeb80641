//! Whether cuDNN can be loaded here, and which version. cudarc opens libcudnn at its first call
//! and panics when the library or a symbol is missing; this module looks once, first, so that
//! the CUDA backend can say why in one line and keep Burn's kernels.

use std::sync::OnceLock;

use cudarc::cudnn::{result, sys};

/// The cuDNN of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Library {
    /// Loaded and usable, with its version ("9.10.2").
    Loaded { version: String },
    /// Not usable, and why, with what to do about it.
    Unavailable { reason: String },
}

/// The oldest cuDNN whose convolution API and version checks the bindings rely on.
const OLDEST_MAJOR: usize = 9;

/// The cuDNN of this process, looked up once.
pub fn library() -> &'static Library {
    static LIBRARY: OnceLock<Library> = OnceLock::new();
    LIBRARY.get_or_init(load)
}

fn load() -> Library {
    // SAFETY: only opens the library by its candidate names, as cudarc would on first use.
    if !unsafe { sys::is_culib_present() } {
        return unavailable(
            "libcudnn was not found on the library path: install cuDNN 9 (PyTorch's CUDA wheels \
             ship it as nvidia-cudnn-cu12) and add its lib folder to LD_LIBRARY_PATH",
        );
    }
    match quietly(result::get_version) {
        Err(message) => unavailable(&format!("libcudnn could not be loaded: {message}")),
        Ok(number) if major(number) < OLDEST_MAJOR => unavailable(&format!(
            "cuDNN {} is too old: install cuDNN {OLDEST_MAJOR} or later",
            version_name(number)
        )),
        Ok(number) => match quietly(result::version_check) {
            Ok(Ok(())) => Library::Loaded {
                version: version_name(number),
            },
            Ok(Err(error)) => unavailable(&format!(
                "cuDNN {}'s parts do not match ({error}): reinstall cuDNN",
                version_name(number)
            )),
            Err(message) => unavailable(&format!(
                "cuDNN {} is incomplete: {message}",
                version_name(number)
            )),
        },
    }
}

fn unavailable(reason: &str) -> Library {
    Library::Unavailable {
        reason: reason.to_string(),
    }
}

/// cuDNN's version number as major.minor.patch: `major * 10000 + minor * 100 + patch` since
/// cuDNN 9, `major * 1000 + minor * 100 + patch` before.
fn version_name(number: usize) -> String {
    let (major, rest) = match number >= 90_000 {
        true => (number / 10_000, number % 10_000),
        false => (number / 1_000, number % 1_000),
    };
    format!("{major}.{}.{}", rest / 100, rest % 100)
}

fn major(number: usize) -> usize {
    match number >= 90_000 {
        true => number / 10_000,
        false => number / 1_000,
    }
}

/// `call()`, with a panic (a symbol cudarc could not load) turned into its first line.
fn quietly<T>(call: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(call);
    std::panic::set_hook(hook);
    outcome.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        message.lines().next().unwrap_or("").to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers_read_as_cudnn_writes_them() {
        assert_eq!(version_name(91_002), "9.10.2");
        assert_eq!(version_name(90_100), "9.1.0");
        assert_eq!(version_name(8_906), "8.9.6");
        assert_eq!(major(8_906), 8);
        assert_eq!(major(91_002), 9);
    }

    #[test]
    fn a_panicking_call_becomes_its_first_line() {
        let outcome: Result<(), String> = quietly(|| panic!("Missing symbol x\nmore"));
        assert_eq!(outcome, Err("Missing symbol x".to_string()));
        assert_eq!(quietly(|| 7), Ok(7));
    }
}
