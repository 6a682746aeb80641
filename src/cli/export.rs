//! `alexnet export`: a run's record as d2l's PyTorch state dict, in safetensors.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::backend::Backend;
use clap::Args;

use super::{BackendArgs, ModelArgs};
use crate::backend::{Devices, InferenceTask};
use crate::{inference, interop};

/// Flags of `alexnet export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The safetensors file to write; in PyTorch,
    /// `net.load_state_dict(safetensors.torch.load_file(FILE))` loads it into d2l's network.
    #[arg(long, value_name = "FILE.safetensors")]
    pub out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The export, on the chosen backend (the weights only pass through it).
pub struct ExportTask<'a>(pub &'a ExportArgs);

impl InferenceTask for ExportTask<'_> {
    type Output = Result<()>;

    fn run<B: Backend>(self, devices: Devices<B>) -> Result<()> {
        let args = self.0;
        let out = &args.out;
        // burn-store 0.21 cannot write PyTorch's pickle format; safetensors is what PyTorch
        // users exchange weights in.
        if out.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            bail!(
                "--out {} must end in .safetensors: export writes safetensors, which PyTorch \
                 loads with safetensors.torch.load_file (torch.save can then make a .pt)",
                out.display()
            );
        }
        if out.exists() && !args.overwrite {
            bail!(
                "{} exists; pass --overwrite to replace it, or choose another --out",
                out.display()
            );
        }
        let run = args.model.run::<B>(&devices.main)?;
        let model = inference::load_model::<B>(&run, &args.model.checkpoint, &devices.main)?;
        let bytes = interop::export_net(&model.net, (&model.config, &model.data.classes), out)?;
        println!(
            "exported {} (--resize {}) to {} ({:.1} MB): d2l's nn.Sequential keys and PyTorch's \
             layouts",
            model.source.display(),
            model.config.image_size,
            out.display(),
            bytes as f64 / 1e6
        );
        Ok(())
    }
}
