//! Running a task on the backend the user picked. Rust monomorphises each task once per
//! compiled-in backend; the one `match` over [`BackendKind`] lives here.

use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend};

use std::path::PathBuf;

use super::{BackendError, BackendKind, DeviceChoice, GpuOptions};

/// The devices a task runs on, the first being the main one.
#[derive(Debug, Clone)]
pub struct Devices<B: Backend> {
    /// The backend they belong to.
    pub kind: BackendKind,
    /// The main device (parameters, optimizer, evaluation).
    pub main: B::Device,
    /// Every device, `main` first; more than one trains data-parallel.
    pub all: Vec<B::Device>,
    /// Backend and devices, for humans ("cpu (flex, 2 threads)", "cuda [Cuda(0)]").
    pub label: String,
    /// The kernel cache directory in use (GPU backends).
    pub kernel_cache: Option<PathBuf>,
}

impl<B: Backend> Devices<B> {
    fn new(kind: BackendKind, all: Vec<B::Device>, label: String) -> Self {
        Self {
            kind,
            main: all[0].clone(),
            all,
            label,
            kernel_cache: None,
        }
    }

    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    fn with_cache(self, dir: PathBuf) -> Self {
        Self {
            kernel_cache: Some(dir),
            ..self
        }
    }

    /// The same devices under another backend type with the same device type.
    fn cast<C: Backend<Device = B::Device>>(self) -> Devices<C> {
        Devices {
            kind: self.kind,
            main: self.main,
            all: self.all,
            label: self.label,
            kernel_cache: self.kernel_cache,
        }
    }
}

/// Work without gradients (inference, evaluation, the layer table), on one device.
pub trait InferenceTask {
    /// What the task returns.
    type Output;
    /// Runs on backend `B`.
    fn run<B: Backend>(self, devices: Devices<B>) -> Self::Output;
}

/// Work with gradients (training, benchmarks of a training step).
pub trait TrainingTask {
    /// What the task returns.
    type Output;
    /// Runs on the autodiff backend `B`.
    fn run<B: AutodiffBackend>(self, devices: Devices<B>) -> Self::Output;
}

/// A task on a plain backend; the one visitor of [`with_backend`].
trait BackendVisitor {
    type Output;
    fn visit<B: Backend>(self, devices: Devices<B>) -> Self::Output;
}

struct Inference<T>(T);

impl<T: InferenceTask> BackendVisitor for Inference<T> {
    type Output = T::Output;
    fn visit<B: Backend>(self, devices: Devices<B>) -> T::Output {
        self.0.run(devices)
    }
}

struct Training<T>(T);

impl<T: TrainingTask> BackendVisitor for Training<T> {
    type Output = T::Output;
    fn visit<B: Backend>(self, devices: Devices<B>) -> T::Output {
        self.0.run::<Autodiff<B>>(devices.cast())
    }
}

/// Runs `task` on `kind` with the device `choice` (the backend's default when `None`).
pub fn run_inference<T: InferenceTask>(
    kind: BackendKind,
    choice: Option<&DeviceChoice>,
    gpu: &GpuOptions,
    task: T,
) -> Result<T::Output, BackendError> {
    let choices: Vec<DeviceChoice> = choice.into_iter().cloned().collect();
    with_backend(kind, &choices, gpu, Inference(task))
}

/// Runs `task` on `kind`'s autodiff backend with the chosen devices (one default device when
/// `choices` is empty).
pub fn run_training<T: TrainingTask>(
    kind: BackendKind,
    choices: &[DeviceChoice],
    gpu: &GpuOptions,
    task: T,
) -> Result<T::Output, BackendError> {
    with_backend(kind, choices, gpu, Training(task))
}

/// Finds the main device's GPU model and points cubecl's caches at its directory.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn activate_cache(
    kind: BackendKind,
    main: &DeviceChoice,
    gpu: &GpuOptions,
) -> Result<PathBuf, BackendError> {
    let model = super::probe::gpu_model(kind, main)?;
    gpu.cache.activate(&model, gpu.level)
}

fn cpu_label(name: &str) -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("cpu ({name}, {threads} threads)")
}

#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(unused_variables))]
fn with_backend<V: BackendVisitor>(
    kind: BackendKind,
    choices: &[DeviceChoice],
    gpu: &GpuOptions,
    visitor: V,
) -> Result<V::Output, BackendError> {
    let choices: Vec<DeviceChoice> = match choices {
        [] => vec![DeviceChoice::Default],
        given => given.to_vec(),
    };
    if !kind.is_gpu() && choices.iter().any(|c| *c != DeviceChoice::Default) {
        return Err(BackendError::NotAGpuBackend(kind));
    }
    match kind {
        #[cfg(feature = "flex")]
        BackendKind::Flex => Ok(visitor.visit::<burn::backend::Flex>(Devices::new(
            kind,
            vec![Default::default()],
            cpu_label("flex"),
        ))),
        #[cfg(feature = "ndarray")]
        BackendKind::Ndarray => Ok(visitor.visit::<burn::backend::NdArray>(Devices::new(
            kind,
            vec![Default::default()],
            cpu_label("ndarray"),
        ))),
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
            let cache = activate_cache(kind, &choices[0], gpu)?;
            let devices = Devices::new(kind, devices, label).with_cache(cache);
            Ok(visitor.visit::<burn::backend::Wgpu>(devices))
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            use burn::backend::cuda::CudaDevice;
            let devices = choices
                .iter()
                .map(|c| match c {
                    DeviceChoice::Default => Ok(CudaDevice::default()),
                    DeviceChoice::Index(n) => Ok(CudaDevice::new(*n)),
                    other => Err(BackendError::CudaDeviceNotNumbered(other.clone())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let label = format!("cuda {:?}", devices);
            #[cfg(feature = "cudnn")]
            let label = {
                let convolutions = super::cudnn::activate(gpu.cudnn);
                eprintln!("{convolutions}");
                format!("{label}, {convolutions}")
            };
            let cache = activate_cache(kind, &choices[0], gpu)?;
            let devices = Devices::new(kind, devices, label).with_cache(cache);
            Ok(visitor.visit::<burn::backend::Cuda>(devices))
        }
        #[allow(unreachable_patterns)]
        other => Err(BackendError::NotCompiled(other)),
    }
}
