//! The command line: one module per subcommand, each running on the backend `--backend` picks;
//! every flag is declared here, and every message that names a flag is worded here
//! ([`explain`]).

mod backends;
mod bench;
mod config_flags;
mod download;
mod eval;
mod export;
mod export_images;
mod import;
mod infer;
mod messages;
mod report;
mod serve;
mod summary;
mod train;
mod values;
mod warmup;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

pub use bench::{BenchArgs, ShapeArgs};
pub use config_flags::{ConfigFlags, flag};
pub use download::DownloadArgs;
pub use eval::EvalArgs;
pub use export::ExportArgs;
pub use import::ImportArgs;
pub use infer::InferArgs;
pub use messages::explain;
pub use report::{PlotArgs, ReportArgs};
pub use serve::ServeArgs;
pub use summary::SummaryArgs;
pub use train::TrainArgs;
pub use warmup::WarmupArgs;

use crate::backend::{
    self, BackendKind, CudnnMode, DeviceChoice, GpuOptions, InferenceTask, KernelCache,
    TrainingTask, TuneLevel, on_rayon_worker,
};
use crate::inference::CheckpointChoice;
use crate::run::{ConfigError, RunDir};
use alexnet_model::Arch;
use burn::tensor::backend::Backend;

/// AlexNet (d2l.ai) on Fashion-MNIST with Burn: train, checkpoint, evaluate, predict.
#[derive(Debug, Parser)]
#[command(name = "alexnet", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train on Fashion-MNIST; defaults are d2l's protocol (10 epochs, batch 128, SGD lr 0.01,
    /// 224 px).
    Train(Box<TrainArgs>),
    /// Predict the classes of image files or test-set images with a trained model.
    Infer(InferArgs),
    /// Serve a run's model over HTTP: predictions as JSON, a page to try it, metrics.
    Serve(ServeArgs),
    /// Evaluate a trained model: loss, accuracy, per-class accuracy, precision and F1, the most
    /// confused pairs, the confusion matrix.
    Eval(EvalArgs),
    /// Read the weights of d2l's PyTorch network or torchvision's alexnet() (a state dict: .pt,
    /// .pth or safetensors, a file or a URL) into a run directory that infer, eval and export use.
    Import(ImportArgs),
    /// Download a weights file (by default torchvision's ImageNet AlexNet) into the cache folder
    /// and print its path.
    Download(DownloadArgs),
    /// Write a run's network as its PyTorch state dict (safetensors), for `net.load_state_dict`
    /// in PyTorch, or as an ONNX model (--format onnx) for ONNX Runtime, tract, Triton, TensorRT.
    Export(ExportArgs),
    /// Write a Fashion-MNIST split as a folder of PNG images, one subfolder per class: the
    /// layout `train --images` reads.
    ExportImages(export_images::ExportImagesArgs),
    /// Redraw a run's training curves (curves.svg, and curves.png with --png) from its logs.
    Plot(PlotArgs),
    /// Print a run's report (and rewrite report.json and report.md) from its files.
    Report(ReportArgs),
    /// List the compiled-in backends and the devices each can see now.
    Backends(backends::BackendsArgs),
    /// Measure training, inference and data-pipeline throughput (images/s, GFLOP/s).
    Bench(BenchArgs),
    /// Print each layer's output shape for one image, as d2l's table, and the parameter count.
    Summary(SummaryArgs),
    /// Print a shell completion script: `alexnet completions bash > ~/.local/share/bash-completion/completions/alexnet`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Compile and tune a GPU backend's kernels for train, eval, infer and bench at the given
    /// sizes, into the kernel cache, so that later runs start at once.
    Warmup(WarmupArgs),
}

/// Which backend and device run the work.
#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Compute backend (must be compiled in; default: the fastest compiled in that has a
    /// device, see `alexnet backends`).
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// GPU to use: N (CUDA device, or wgpu discrete GPU), integrated:N or cpu (wgpu), default.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<DeviceChoice>,
    #[command(flatten)]
    pub gpu: GpuArgs,
}

/// Where GPU backends keep their compiled and tuned kernels, and how hard they tune.
#[derive(Debug, Default, Args)]
pub struct GpuArgs {
    /// GPU kernel cache: autotune results, compiled kernels and the driver's shader cache, one
    /// directory per GPU model and build [default: $ALEXNET_KERNEL_CACHE, else
    /// ~/.cache/alexnet-burn/kernels].
    #[arg(long, value_name = "DIR")]
    pub kernel_cache: Option<PathBuf>,
    /// How many kernel variants GPU autotuning tries per operation [default:
    /// $CUBECL_AUTOTUNE_LEVEL, else balanced].
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub autotune_level: Option<TuneLevel>,
    /// How the convolutions on CUDA run: through cuDNN with TF32 tensor cores allowed
    /// (PyTorch's default), through cuDNN in strict float32, or on Burn's kernels [default:
    /// $ALEXNET_CUDNN, else tf32].
    #[cfg(feature = "cudnn")]
    #[arg(long, value_enum, value_name = "MODE", env = "ALEXNET_CUDNN")]
    pub cudnn: Option<CudnnMode>,
}

impl GpuArgs {
    /// The options these flags (and their environment variables) select.
    pub fn options(&self) -> GpuOptions {
        GpuOptions {
            cache: KernelCache::resolve(self.kernel_cache.as_deref()),
            level: TuneLevel::resolve(self.autotune_level),
            #[cfg(feature = "cudnn")]
            cudnn: self.cudnn.unwrap_or_default(),
            #[cfg(not(feature = "cudnn"))]
            cudnn: CudnnMode::Off,
        }
    }
}

impl BackendArgs {
    fn kind(&self) -> BackendKind {
        self.backend.unwrap_or_else(backend::default_backend)
    }

    /// Runs `task` on the chosen backend and device.
    fn inference<T: InferenceTask<Output = Result<()>>>(
        &self,
        gpu: &GpuOptions,
        task: T,
    ) -> Result<()> {
        backend::run_inference(self.kind(), self.device.as_ref(), gpu, task)?
    }

    /// Runs `task` on the chosen backend's autodiff form, on `devices` (the default device when
    /// empty).
    fn training<T: TrainingTask<Output = Result<()>>>(
        &self,
        gpu: &GpuOptions,
        devices: &[DeviceChoice],
        task: T,
    ) -> Result<()> {
        backend::run_training(self.kind(), devices, gpu, task)?
    }

    /// `--device` as a list, for [`Self::training`].
    fn device_list(&self) -> Vec<DeviceChoice> {
        self.device.iter().cloned().collect()
    }
}

/// Which trained model to load: a run directory and one of its records.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The training run whose config.json and records to use [default: artifacts].
    #[arg(long, value_name = "DIR")]
    pub artifact_dir: Option<PathBuf>,
    /// Which record: final (model.mpk), best (lowest test loss), last, an epoch number, or a
    /// path to a record file.
    #[arg(long, default_value = "final", value_name = "WHICH")]
    pub checkpoint: CheckpointChoice,
    /// With --arch imagenet and no --artifact-dir: torchvision's ImageNet weights, downloaded
    /// into the cache folder the first time; with --artifact-dir, the network the run must hold.
    #[command(flatten)]
    pub network: config_flags::SettingFlags<config_flags::Network>,
    #[command(flatten)]
    pub cache: download::CacheArgs,
}

impl ModelArgs {
    /// The run to read: --artifact-dir, or torchvision's ImageNet weights for `--arch imagenet`
    /// alone; a run of another network than --arch names is refused.
    fn run<B: Backend>(&self, device: &B::Device) -> Result<RunDir> {
        let arch = chosen_arch(&self.network);
        let run = match (&self.artifact_dir, arch) {
            (None, Some(Arch::Imagenet)) => {
                return import::torchvision_run::<B>(&self.cache, device);
            }
            (None, Some(Arch::D2l)) => anyhow::bail!(
                "--arch d2l comes with no trained weights; pass --artifact-dir with a run you \
                 trained or imported"
            ),
            (dir, _) => RunDir::new(dir.as_deref().unwrap_or(Path::new(DEFAULT_RUN))),
        };
        if let Some(arch) = arch {
            let held = run.load_config()?.model.arch;
            if held != arch {
                anyhow::bail!(
                    "{} holds {held}'s network, not {arch}'s; drop --arch, or pass the \
                     --artifact-dir of a {arch} run",
                    run.path().display()
                );
            }
        }
        Ok(run)
    }
}

/// The run directory commands read and write when --artifact-dir is not given.
const DEFAULT_RUN: &str = "artifacts";

impl Cli {
    /// The GPU flags of the command, for those that can run on a GPU.
    fn gpu_args(&self) -> Option<&GpuArgs> {
        match &self.command {
            Command::Train(args) => Some(&args.backend.gpu),
            Command::Infer(args) => Some(&args.backend.gpu),
            Command::Serve(args) => Some(&args.backend.gpu),
            Command::Eval(args) => Some(&args.backend.gpu),
            Command::Bench(args) => Some(&args.backend.gpu),
            Command::Summary(args) => Some(&args.backend.gpu),
            Command::Warmup(args) => Some(&args.backend.gpu),
            Command::Import(args) => Some(&args.backend.gpu),
            Command::Export(args) => Some(&args.backend.gpu),
            Command::Backends(args) => Some(&args.gpu),
            Command::Report(args) => Some(&args.backend.gpu),
            Command::Plot(_)
            | Command::ExportImages(_)
            | Command::Download(_)
            | Command::Completions { .. } => None,
        }
    }

    /// The kernel cache and autotune level, resolved once from the command's flags (or, for a
    /// command without them, the environment): [`export_driver_caches`] and [`run`] take it.
    pub fn gpu_options(&self) -> GpuOptions {
        self.gpu_args()
            .map_or_else(|| GpuArgs::default().options(), GpuArgs::options)
    }
}

/// Points the GPU drivers' own kernel caches into the kernel cache (environment variables),
/// for a command that can run on a GPU, in a build with a GPU backend.
///
/// # Safety
/// Call before any thread starts: it writes the environment.
pub unsafe fn export_driver_caches(cli: &Cli, gpu: &GpuOptions) {
    if cfg!(any(feature = "wgpu", feature = "cuda")) && cli.gpu_args().is_some() {
        // SAFETY: forwarded to the caller.
        unsafe { gpu.cache.export_driver_caches() };
    }
}

/// Runs the parsed command, GPU work with `gpu` (from [`Cli::gpu_options`]).
pub fn run(cli: Cli, gpu: &GpuOptions) -> Result<()> {
    match cli.command {
        Command::Train(args) => on_rayon_worker(|| {
            args.backend
                .training(gpu, &args.devices(), train::TrainTask(&args))
        }),
        Command::Bench(args) => {
            let devices = args.backend.device_list();
            on_rayon_worker(|| {
                args.backend
                    .training(gpu, &devices, bench::BenchTask(&args))
            })
        }
        Command::Infer(args) if args.explain => {
            let devices = args.backend.device_list();
            on_rayon_worker(|| {
                args.backend
                    .training(gpu, &devices, infer::InferTask(&args))
            })
        }
        Command::Infer(args) => {
            on_rayon_worker(|| args.backend.inference(gpu, infer::InferTask(&args)))
        }
        Command::Serve(args) => {
            let devices = args.backend.device_list();
            args.backend
                .training(gpu, &devices, serve::ServeTask(&args))
        }
        Command::Eval(args) => {
            let devices = args.backend.device_list();
            on_rayon_worker(|| args.backend.training(gpu, &devices, eval::EvalTask(&args)))
        }
        Command::Summary(args) => args.backend.inference(gpu, summary::SummaryTask(&args)),
        Command::Import(args) => args.backend.inference(gpu, import::ImportTask(&args)),
        Command::Export(args) => args.backend.inference(gpu, export::ExportTask(&args)),
        Command::Warmup(args) => {
            let devices = args.backend.device_list();
            args.backend
                .training(gpu, &devices, warmup::WarmupTask(&args))
        }
        Command::Backends(args) => backends::list(&args, gpu),
        Command::ExportImages(args) => export_images::export(&args),
        Command::Download(args) => download::download(&args),
        Command::Plot(args) => report::plot(&args),
        Command::Report(args) if args.no_gallery => report::report(&args),
        Command::Report(args) => {
            let devices = args.backend.device_list();
            args.backend
                .training(gpu, &devices, report::ReportTask(&args))
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "alexnet",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// Refuses a forward pass of `batch` images whose activations would be over the model crate's
/// budget, naming the `flag` that set it.
fn check_batch(config: &alexnet_model::AlexNetConfig, batch: usize, flag: &str) -> Result<()> {
    config
        .check_batch(batch, false)
        .map_err(|err| anyhow::anyhow!("{flag} is too large: {err}"))
}

/// The network the `network` flags name, as its source defines it (d2l's for Fashion-MNIST,
/// torchvision's for ImageNet), at `--resize`, checked as a training configuration's is (so
/// that a bad size gets the same message).
/// The network `--arch` names, if it was given.
fn chosen_arch(
    network: &config_flags::SettingFlags<config_flags::Network>,
) -> Option<alexnet_model::Arch> {
    let overrides = network.overrides();
    let given = overrides.given(crate::run::Setting::Architecture);
    given.then(|| {
        overrides
            .applied_to(crate::run::TrainingConfig::d2l(224))
            .model
            .arch
    })
}

fn model_config(
    network: &config_flags::SettingFlags<config_flags::Network>,
    resize: usize,
) -> Result<alexnet_model::AlexNetConfig> {
    let arch = network
        .overrides()
        .applied_to(crate::run::TrainingConfig::d2l(resize))
        .model
        .arch;
    let config = alexnet_model::AlexNetConfig::for_arch(arch).with_image_size(resize);
    config.validate().map_err(ConfigError::Model)?;
    Ok(config)
}
