use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    quiet_graphics_probe();
    let cli = alexnet::cli::Cli::parse();
    match alexnet::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            match err.downcast_ref::<alexnet::training::TrainingStopped>() {
                Some(stop) if stop.by_user() => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
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
