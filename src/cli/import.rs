//! `alexnet import`: a PyTorch state dict of d2l's network into a run directory.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::Backend;
use clap::Args;

use super::BackendArgs;
use crate::backend::{Devices, InferenceTask};
use crate::interop;
use crate::run::{RunDir, TrainingConfig};

/// Flags of `alexnet import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The weights of d2l's nn.Sequential AlexNet: torch.save(net.state_dict()) (.pt, .pth) or
    /// safetensors.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The run directory to write (config.json and model.mpk), for infer, eval and export.
    #[arg(long, default_value = "artifacts", value_name = "DIR")]
    pub artifact_dir: PathBuf,
    /// The input side the network was built for [default: the side `alexnet export` recorded
    /// in the file, else 224].
    #[arg(long, value_name = "PIXELS")]
    pub resize: Option<usize>,
    /// For a full checkpoint dict: the key that holds the state dict (e.g. model_state_dict).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Replace a run already in --artifact-dir.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The import, on the chosen backend (the weights only pass through it).
pub struct ImportTask<'a>(pub &'a ImportArgs);

impl InferenceTask for ImportTask<'_> {
    type Output = Result<()>;

    fn run<B: Backend>(self, devices: Devices<B>) -> Result<()> {
        let args = self.0;
        // A file `alexnet export` wrote says its input and classes; d2l's own is Fashion-MNIST's.
        let exported = interop::exported_input(&args.from);
        let resize = args.resize.or(exported.image_size).unwrap_or(224);
        let mut run_config = TrainingConfig::d2l(resize);
        if let Some(classes) = exported.classes {
            run_config.model.num_classes = classes.len();
            run_config.data.classes = classes;
        }
        run_config.model.in_channels = exported.in_channels.unwrap_or(1);
        let config = super::model_config(resize)?
            .with_num_classes(run_config.model.num_classes)
            .with_in_channels(run_config.model.in_channels);
        let (net, format) =
            interop::import_net::<B>(&args.from, &config, args.key.as_deref(), &devices.main)?;
        let run = RunDir::new(&args.artifact_dir);
        run.prepare_new(args.overwrite)?;
        let model = run.save_model(&net)?;
        run.save_config(&run_config)?;
        println!(
            "imported {} ({}, {} parameters, --resize {resize}) into {} and {}",
            args.from.display(),
            format,
            crate::human::thousands(net.parameter_count()),
            model.display(),
            run.config_file().display()
        );
        println!(
            "use it with: alexnet eval --artifact-dir {}",
            args.artifact_dir.display()
        );
        Ok(())
    }
}
