//! `alexnet import`: a PyTorch state dict of d2l's network or torchvision's into a run
//! directory.

use std::path::{Path, PathBuf};

use alexnet_model::{Arch, Preprocess};
use anyhow::Result;
use burn::tensor::backend::Backend;
use clap::Args;

use super::BackendArgs;
use super::config_flags::{Network, SettingFlags};
use super::download::CacheArgs;
use crate::backend::{Devices, InferenceTask};
use crate::download::TORCHVISION_ALEXNET;
use crate::interop::{self, ExportedInput, FileNetwork};
use crate::run::{ConfigError, RunDir, TrainingConfig, imagenet_classes};

/// Flags of `alexnet import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The weights of d2l's nn.Sequential AlexNet or torchvision's alexnet(): torch.save(net.
    /// state_dict()) (.pt, .pth) or safetensors. Which network it is, its keys say. A URL is
    /// downloaded into the cache folder first (as `alexnet download` does).
    #[arg(long, value_name = "FILE|URL")]
    pub from: PathBuf,
    #[command(flatten)]
    pub cache: CacheArgs,
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
    /// Confirms the network the file must hold [default: the one its keys say].
    #[command(flatten)]
    pub network: SettingFlags<Network>,
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
        let from = args.cache.local(args.from.clone())?;
        let arch = super::chosen_arch(&args.network);
        let run = RunDir::new(&args.artifact_dir);
        let asked = Asked {
            resize: args.resize,
            key: args.key.as_deref(),
            arch,
            overwrite: args.overwrite,
        };
        let (net, arch, resize, format) = import::<B>(&from, &run, asked, &devices.main)?;
        println!(
            "imported {} ({}'s network, {}, {} parameters, --resize {resize}) into {} and {}",
            from.display(),
            arch,
            format,
            crate::human::thousands(net),
            run.model_file().display(),
            run.config_file().display()
        );
        println!(
            "use it with: alexnet eval --artifact-dir {}",
            args.artifact_dir.display()
        );
        Ok(())
    }
}

/// What the user asked of an import beyond the file: each `None` is read from the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked<'a> {
    resize: Option<usize>,
    key: Option<&'a str>,
    arch: Option<Arch>,
    overwrite: bool,
}

/// Reads `from` into `run`: returns the parameter count, network, input side and file format.
fn import<B: Backend>(
    from: &Path,
    run: &RunDir,
    asked: Asked,
    device: &B::Device,
) -> Result<(usize, Arch, usize, interop::Format)> {
    // A file `alexnet export` wrote says its input and classes; d2l's own is Fashion-MNIST's,
    // torchvision's ImageNet's.
    let exported = interop::exported_input(from);
    let held = interop::file_network(from, asked.key)?;
    let resize = asked.resize.or(exported.image_size).unwrap_or(224);
    let arch = asked.arch.unwrap_or(held.map_or(Arch::D2l, |h| h.arch));
    let run_config = run_config(arch, resize, &exported, held);
    let config = run_config.model.clone();
    config.validate().map_err(ConfigError::Model)?;
    let (net, format) = interop::import_net::<B>(from, &config, asked.key, device)?;
    run.prepare_new(asked.overwrite)?;
    run.save_model(&net)?;
    // config.json last: a run with it is whole.
    run.save_config(&run_config)?;
    Ok((net.parameter_count(), arch, resize, format))
}

/// The folder in the cache that holds torchvision's ImageNet weights as a run.
const TORCHVISION_RUN: &str = "torchvision-alexnet-imagenet";

/// The run of torchvision's ImageNet weights in the cache folder: downloaded and imported the
/// first time (`infer --arch imagenet` without a run of its own), read from there after.
pub fn torchvision_run<B: Backend>(cache: &CacheArgs, device: &B::Device) -> Result<RunDir> {
    let run = RunDir::new(cache.dir().join(TORCHVISION_RUN));
    if run.config_file().is_file() {
        return Ok(run);
    }
    let file = cache.local(PathBuf::from(TORCHVISION_ALEXNET))?;
    let asked = Asked {
        arch: Some(Arch::Imagenet),
        overwrite: true,
        ..Asked::default()
    };
    import::<B>(&file, &run, asked, device)?;
    eprintln!(
        "imported torchvision's ImageNet weights into {} (once; later commands read them there)",
        run.path().display()
    );
    Ok(run)
}

/// The run an imported file makes: `arch`'s network as its source defines it, with what the
/// file says of its input and classes (an export's metadata, else its first and last layers'
/// shapes); classes without names are Fashion-MNIST's (10 under d2l's network) or ImageNet's
/// (1,000 under torchvision's), else numbered.
fn run_config(
    arch: Arch,
    resize: usize,
    exported: &ExportedInput,
    held: Option<FileNetwork>,
) -> TrainingConfig {
    let mut config = TrainingConfig::d2l(resize);
    config.model = interop::file_model(arch, resize, exported, held);
    let count = config.model.num_classes;
    config.data.classes = match (&exported.classes, arch, count) {
        (Some(names), _, _) => names.clone(),
        (None, Arch::D2l, 10) => config.data.classes.clone(),
        (None, Arch::Imagenet, 1000) => imagenet_classes(),
        (None, _, count) => (0..count).map(|i| format!("class {i}")).collect(),
    };
    // The weights read images as they were trained to (ImageNet's transform for ImageNet's).
    config.data.preprocess = Preprocess::for_weights(arch, config.model.in_channels);
    config
}
