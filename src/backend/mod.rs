//! The compute backends: which are compiled in ([`BackendKind`]), what each can see and which
//! to use by default ([`probe`]), and monomorphised dispatch of a task to one of them
//! ([`run_inference`], [`run_training`]).

mod dispatch;
mod kernel_cache;
pub mod probe;

use serde::Serialize;

pub use dispatch::{Devices, InferenceTask, TrainingTask, run_inference, run_training};
pub use kernel_cache::{CacheStatus, KernelCache, TuneLevel, count_tuned_keys};
pub use probe::{BackendDevices, DeviceInfo, default_backend, probe_all};

/// How the GPU backends keep and tune their kernels.
#[derive(Debug, Clone)]
pub struct GpuOptions {
    /// Where compiled and tuned kernels are kept.
    pub cache: KernelCache,
    /// How hard the autotuner searches.
    pub level: TuneLevel,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
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
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let index = |n: &str| {
            n.parse()
                .map_err(|_| format!("'{s}' is not a device: use N, integrated:N, cpu or default"))
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

/// Why a backend or device cannot be used.
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
    /// The device is missing, or its kernel cache cannot be used.
    #[error("{0}")]
    Unavailable(String),
    /// A device choice the backend does not have.
    #[error("backend {backend} has no device {choice:?}: {hint}")]
    BadDevice {
        /// The backend.
        backend: &'static str,
        /// What was asked for.
        choice: DeviceChoice,
        /// What to do instead.
        hint: &'static str,
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
        assert_eq!("3".parse(), Ok(DeviceChoice::Index(3)));
        assert_eq!("discrete:1".parse(), Ok(DeviceChoice::Index(1)));
        assert_eq!("integrated:0".parse(), Ok(DeviceChoice::Integrated(0)));
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("default".parse(), Ok(DeviceChoice::Default));
        assert!(
            "gpu"
                .parse::<DeviceChoice>()
                .unwrap_err()
                .contains("use N, integrated:N, cpu")
        );
    }
}
