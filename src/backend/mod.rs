//! The compute backends: which are compiled in ([`BackendKind`]), what each can see and which
//! to use by default ([`probe`]), and monomorphised dispatch of a task to one of them
//! ([`run_inference`], [`run_training`]).

mod cudnn;
mod dispatch;
mod kernel_cache;
pub mod probe;
mod threads;

use std::path::PathBuf;

use serde::Serialize;

pub use cudnn::{CudnnMode, CudnnStatus};
pub use dispatch::{Devices, InferenceTask, TrainingTask, run_inference, run_training};
pub use kernel_cache::{CacheStatus, KernelCache, TuneLevel, count_tuned_keys};
pub use probe::{BackendDevices, DeviceInfo, default_backend, probe_all};
pub use threads::on_rayon_worker;

/// How the GPU backends keep and tune their kernels.
#[derive(Debug, Clone)]
pub struct GpuOptions {
    /// Where compiled and tuned kernels are kept.
    pub cache: KernelCache,
    /// How hard the autotuner searches.
    pub level: TuneLevel,
    /// How the CUDA backend's convolutions run (cuDNN builds).
    pub cudnn: CudnnMode,
}

#[cfg(not(any(
    feature = "flex",
    feature = "ndarray",
    feature = "wgpu",
    feature = "cuda"
)))]
compile_error!(
    "alexnet needs at least one backend: build with the cargo feature `flex` (the default), \
     `ndarray`, `wgpu` or `cuda`, e.g. `cargo build --release --features cuda`"
);

/// A backend the user can ask for with `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-cuda: NVIDIA GPUs.
    Cuda,
    /// burn-wgpu: Vulkan / Metal / DirectX / OpenGL GPUs.
    Wgpu,
    /// burn-flex: Burn's fast pure-Rust CPU backend (SIMD + rayon).
    Flex,
    /// burn-ndarray: the reference CPU backend.
    Ndarray,
}

impl BackendKind {
    /// Every backend, fastest first.
    pub const ALL: [BackendKind; 4] = [Self::Cuda, Self::Wgpu, Self::Flex, Self::Ndarray];

    /// The name used by `--backend` and the cargo feature.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cuda => "cuda",
            Self::Wgpu => "wgpu",
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
        }
    }

    /// Whether this binary was built with the backend's cargo feature.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Cuda => cfg!(feature = "cuda"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Flex => cfg!(feature = "flex"),
            Self::Ndarray => cfg!(feature = "ndarray"),
        }
    }

    /// Whether the backend runs on a GPU (and takes `--device`).
    pub fn is_gpu(self) -> bool {
        matches!(self, Self::Cuda | Self::Wgpu)
    }

    /// The backends compiled into this binary, fastest first.
    pub fn compiled() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }
}

/// Which device of the backend to use (`--device`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The backend's default device.
    #[default]
    Default,
    /// The N-th device (CUDA) or N-th discrete GPU (wgpu).
    Index(usize),
    /// wgpu: the N-th integrated GPU.
    Integrated(usize),
    /// wgpu: the CPU adapter (lavapipe, llvmpipe).
    Cpu,
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Index(n) => write!(f, "{n}"),
            Self::Integrated(n) => write!(f, "integrated:{n}"),
            Self::Cpu => f.write_str("cpu"),
        }
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let index = |n: &str| {
            n.parse()
                .map_err(|_| BackendError::NotADevice(s.to_string()))
        };
        match s {
            "default" => Ok(Self::Default),
            "cpu" => Ok(Self::Cpu),
            _ => match s.strip_prefix("integrated:") {
                Some(n) => index(n).map(Self::Integrated),
                None => index(s.strip_prefix("discrete:").unwrap_or(s)).map(Self::Index),
            },
        }
    }
}

/// Why a backend, a device or the kernel cache cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend's feature was not compiled in.
    #[error(
        "backend {} is not compiled into this binary (it has: {}); rebuild with \
         `cargo build --release --features {}`",
        .0.name(), compiled_names(), .0.name()
    )]
    NotCompiled(BackendKind),
    /// `--device` or `--devices` given to a CPU backend.
    #[error("--device/--devices select GPUs; backend {} runs on the CPU: drop the flag or pick --backend cuda or wgpu", .0.name())]
    NotAGpuBackend(BackendKind),
    /// A device that is not written as a device.
    #[error("'{0}' is not a device: use N, integrated:N, cpu or default")]
    NotADevice(String),
    /// CUDA numbers its devices; `integrated:N` or `cpu` are wgpu's.
    #[error("CUDA devices are numbered, not `--device {0}`: --device 0, 1, …")]
    CudaDeviceNotNumbered(DeviceChoice),
    /// There is no CUDA device with this number.
    #[error("there is no CUDA device {index}: this machine has {count} (see `alexnet backends`)")]
    NoSuchCudaDevice {
        /// The device asked for.
        index: usize,
        /// The devices there are.
        count: usize,
    },
    /// No NVIDIA kernel driver is loaded.
    #[error(
        "no NVIDIA driver loaded (/proc/driver/nvidia/version is missing); install the NVIDIA \
         driver"
    )]
    NoNvidiaDriver,
    /// The CUDA driver library is missing or refused to start.
    #[error("no usable CUDA driver ({0}); install the NVIDIA driver")]
    CudaDriver(String),
    /// wgpu sees no adapter at all.
    #[error(
        "no wgpu adapter: install GPU drivers, or Mesa's software Vulkan driver (apt-get \
         install mesa-vulkan-drivers) to run on the CPU"
    )]
    NoWgpuAdapter,
    /// wgpu has adapters, but not the one asked for.
    #[error(
        "wgpu has no device `--device {0}`; `alexnet backends` lists the devices it sees (for \
         the CPU adapter: apt-get install mesa-vulkan-drivers)"
    )]
    NoSuchWgpuDevice(DeviceChoice),
    /// The kernel cache directory cannot be created.
    #[error(
        "cannot create the kernel cache {} ({source}); pass a writable --kernel-cache or set \
         ALEXNET_KERNEL_CACHE", dir.display()
    )]
    KernelCacheUnwritable {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A second kernel cache in a process whose GPU runtime already uses another: cubecl reads
    /// its configuration once per process.
    #[error(
        "this process already keeps its GPU kernels in {} ({}); it cannot switch to {} ({}): \
         run the second task in its own process",
        .first.0.display(), .first.1.name(), .second.0.display(), .second.1.name()
    )]
    KernelCacheInUse {
        /// The directory and autotune level in use.
        first: (PathBuf, TuneLevel),
        /// The ones asked for.
        second: (PathBuf, TuneLevel),
    },
}

fn compiled_names() -> String {
    let names: Vec<_> = BackendKind::compiled().iter().map(|b| b.name()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choices_parse() {
        assert_eq!("3".parse().ok(), Some(DeviceChoice::Index(3)));
        assert_eq!("discrete:1".parse().ok(), Some(DeviceChoice::Index(1)));
        assert_eq!(
            "integrated:0".parse().ok(),
            Some(DeviceChoice::Integrated(0))
        );
        assert_eq!("cpu".parse().ok(), Some(DeviceChoice::Cpu));
        assert_eq!("default".parse().ok(), Some(DeviceChoice::Default));
        let err = "gpu".parse::<DeviceChoice>().unwrap_err().to_string();
        assert!(err.contains("use N, integrated:N, cpu"), "{err}");
    }
}
