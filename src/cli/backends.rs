//! `alexnet backends`.

use anyhow::Result;
use clap::Args;

use crate::backend::probe;

/// Flags of `alexnet backends`.
#[derive(Debug, Args)]
pub struct BackendsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Prints every compiled-in backend with its devices, or why it has none.
pub fn list(args: &BackendsArgs) -> Result<()> {
    let backends = probe::probe_all();
    match args.json {
        true => println!(
            "{}",
            serde_json::to_string_pretty(&backends).expect("serialises")
        ),
        false => print!("{}", probe::to_text(&backends)),
    }
    Ok(())
}
