use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    keep_freed_memory();
    quiet_graphics_probe();
    let cli = alexnet::cli::Cli::parse();
    let gpu = cli.gpu_options();
    // SAFETY: no other thread exists yet.
    unsafe { alexnet::cli::export_driver_caches(&cli, &gpu) };
    match alexnet::cli::run(cli, &gpu) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", alexnet::cli::explain(&err));
            match err.downcast_ref::<alexnet::training::TrainingStopped>() {
                Some(stop) if stop.by_user() => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_t`, mimalloc.h; the Rust
/// bindings name no constant for it). Its default is 1000 ms (options.c).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc hands freed memory back to the OS after a second. A training step frees and
/// reallocates the same large activation buffers every few seconds, and the kernel then zeroes
/// every page again on first touch (a tenth of a step at 224 px); keep freed memory for reuse
/// instead, unless `MIMALLOC_PURGE_DELAY` says otherwise.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Vulkan's window-system layers complain on stderr when `XDG_RUNTIME_DIR` is unset (CI, cron,
/// containers) as soon as wgpu lists adapters; give them the temporary directory instead.
fn quiet_graphics_probe() {
    if cfg!(feature = "wgpu") && std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_with_a_1000_ms_default() {
        // SAFETY: reads an option; nothing else in this test binary sets it.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            default, 1000,
            "mimalloc's option order changed: fix MI_OPTION_PURGE_DELAY"
        );
    }
}
