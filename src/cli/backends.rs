//! `alexnet backends`.

use anyhow::Result;
use clap::Args;

use super::GpuArgs;
use crate::backend::{GpuOptions, probe};

/// Flags of `alexnet backends`.
#[derive(Debug, Args)]
pub struct BackendsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub gpu: GpuArgs,
}

/// Prints every compiled-in backend with its devices, or why it has none, and the state of
/// the kernel cache `gpu` names.
pub fn list(args: &BackendsArgs, gpu: &GpuOptions) -> Result<()> {
    let backends = probe::probe_all(gpu);
    match args.json {
        true => println!(
            "{}",
            serde_json::to_string_pretty(&backends).expect("serialises")
        ),
        false => println!(
            "{}kernel cache: {} (autotune level {})",
            probe::to_text(&backends),
            gpu.cache.root().display(),
            gpu.level.name()
        ),
    }
    Ok(())
}
