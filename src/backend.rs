//! The compute backends compiled into this binary, the devices they can see, and monomorphised
//! dispatch to one of them.

use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;

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

    /// The fastest compiled-in backend with a usable device: a GPU backend only when it sees a
    /// real GPU (a CPU-emulated Vulkan adapter such as lavapipe is slower than flex).
    pub fn default_compiled() -> BackendKind {
        let compiled = Self::compiled();
        compiled
            .iter()
            .copied()
            .find(|b| !b.is_gpu() || crate::devices::has_gpu(*b))
            .unwrap_or(compiled[0])
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

/// Work that runs on whichever backend the user picked; `run` is monomorphised per backend.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Runs on backend `B` (with autodiff) on `devices` (the first is the main one), described
    /// for humans by `label`.
    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>, label: String) -> Self::Output;
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

fn cpu_label(name: &str) -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("cpu ({name}, {threads} threads)")
}

/// Runs `task` on `kind` with the chosen devices (one `Default` when `choices` is empty).
pub fn dispatch<T: BackendTask>(
    kind: BackendKind,
    choices: &[DeviceChoice],
    task: T,
) -> Result<T::Output, BackendError> {
    let choices: Vec<DeviceChoice> = match choices {
        [] => vec![DeviceChoice::Default],
        given => given.to_vec(),
    };
    if !kind.is_gpu() && choices.iter().any(|c| *c != DeviceChoice::Default) {
        return Err(BackendError::NotAGpuBackend(kind));
    }
    match kind {
        #[cfg(feature = "flex")]
        BackendKind::Flex => {
            Ok(task
                .run::<Autodiff<burn::backend::Flex>>(vec![Default::default()], cpu_label("flex")))
        }
        #[cfg(feature = "ndarray")]
        BackendKind::Ndarray => Ok(task.run::<Autodiff<burn::backend::NdArray>>(
            vec![Default::default()],
            cpu_label("ndarray"),
        )),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            use burn::backend::wgpu::WgpuDevice;
            let devices = choices
                .iter()
                .map(|c| match c {
                    DeviceChoice::Default => WgpuDevice::DefaultDevice,
                    DeviceChoice::Index(n) => WgpuDevice::DiscreteGpu(*n),
                    DeviceChoice::Integrated(n) => WgpuDevice::IntegratedGpu(*n),
                    DeviceChoice::Cpu => WgpuDevice::Cpu,
                })
                .collect::<Vec<_>>();
            let label = format!("wgpu {:?}", devices);
            Ok(task.run::<Autodiff<burn::backend::Wgpu>>(devices, label))
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            use burn::backend::cuda::CudaDevice;
            let devices = choices
                .iter()
                .map(|c| match c {
                    DeviceChoice::Default => Ok(CudaDevice::default()),
                    DeviceChoice::Index(n) => Ok(CudaDevice::new(*n)),
                    other => Err(BackendError::BadDevice {
                        backend: "cuda",
                        choice: other.clone(),
                        hint: "CUDA devices are numbered: --device 0, 1, …",
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let label = format!("cuda {:?}", devices);
            Ok(task.run::<Autodiff<burn::backend::Cuda>>(devices, label))
        }
        #[allow(unreachable_patterns)]
        other => Err(BackendError::NotCompiled(other)),
    }
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

    #[test]
    fn the_default_backend_is_compiled_in() {
        assert!(BackendKind::default_compiled().is_compiled());
    }
}
