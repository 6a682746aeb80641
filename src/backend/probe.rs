//! What each compiled-in backend can see right now (`alexnet backends`), and the default
//! backend: the fastest one compiled in that has a usable device.

use serde::Serialize;

#[cfg(any(feature = "wgpu", feature = "cuda"))]
use super::DeviceChoice;
use super::cudnn::CudnnStatus;
use super::kernel_cache::CacheStatus;
use super::{BackendError, BackendKind, GpuOptions};

/// One device a backend can use, with the `--device` value that selects it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// The device's name (adapter name, API and driver for wgpu).
    pub name: String,
    /// Its kind: cpu, discrete GPU, integrated GPU, …
    pub kind: String,
    /// The `--device` value that selects it.
    pub selector: String,
    /// The GPU model its kernels are cached under (GPU backends only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Device memory in bytes, where the driver says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// The kernel cache of this model, build and autotune level (GPU backends only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_cache: Option<CacheStatus>,
}

/// A compiled-in backend and its devices, or why it has none.
#[derive(Debug, Clone, Serialize)]
pub struct BackendDevices {
    /// The backend.
    pub backend: BackendKind,
    /// Devices it can use now.
    pub devices: Vec<DeviceInfo>,
    /// Why there is none, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Whether the convolutions can run through cuDNN (the CUDA backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cudnn: Option<CudnnStatus>,
}

/// Probes every compiled-in backend, with the state of each GPU's kernel cache.
pub fn probe_all(gpu: &GpuOptions) -> Vec<BackendDevices> {
    let mut all: Vec<BackendDevices> = BackendKind::compiled().into_iter().map(probe).collect();
    for device in all.iter_mut().flat_map(|b| b.devices.iter_mut()) {
        if let Some(model) = &device.model {
            device.kernel_cache = Some(gpu.cache.status(model, gpu.level));
        }
    }
    all
}

/// Whether `kind` sees a real (not CPU-emulated) GPU.
fn has_gpu(kind: BackendKind) -> bool {
    probe(kind).devices.iter().any(|d| d.kind != "cpu")
}

/// The fastest compiled-in backend with a usable device: a GPU backend only when it sees a
/// real GPU (a CPU-emulated Vulkan adapter such as lavapipe is slower than flex).
pub fn default_backend() -> BackendKind {
    let compiled = BackendKind::compiled();
    compiled
        .iter()
        .copied()
        .find(|b| !b.is_gpu() || has_gpu(*b))
        .unwrap_or(compiled[0])
}

fn probe(kind: BackendKind) -> BackendDevices {
    let found = match kind {
        BackendKind::Flex | BackendKind::Ndarray => Ok(vec![DeviceInfo {
            name: format!(
                "{} threads",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
            kind: "cpu".into(),
            selector: "default".into(),
            model: None,
            memory_bytes: None,
            kernel_cache: None,
        }]),
        BackendKind::Wgpu => wgpu_devices(),
        BackendKind::Cuda => cuda_devices(),
    };
    let (devices, unavailable) = match found {
        Ok(devices) if devices.is_empty() => (devices, Some("no device found".to_string())),
        Ok(devices) => (devices, None),
        Err(reason) => (Vec::new(), Some(reason.to_string())),
    };
    BackendDevices {
        backend: kind,
        devices,
        unavailable,
        cudnn: (kind == BackendKind::Cuda).then(super::cudnn::status),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_instance() -> wgpu::Instance {
    let descriptor = wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    };
    wgpu::Instance::new(descriptor)
}

#[cfg(feature = "wgpu")]
fn wgpu_devices() -> Result<Vec<DeviceInfo>, BackendError> {
    use wgpu::DeviceType;
    let adapters =
        futures_lite::future::block_on(wgpu_instance().enumerate_adapters(wgpu::Backends::all()));
    if adapters.is_empty() {
        return Err(BackendError::NoWgpuAdapter);
    }
    let (mut discrete, mut integrated) = (0, 0);
    Ok(adapters
        .iter()
        .map(|adapter| {
            let info = adapter.get_info();
            let (kind, selector) = match info.device_type {
                DeviceType::DiscreteGpu => {
                    ("discrete GPU", format!("{}", post_increment(&mut discrete)))
                }
                DeviceType::IntegratedGpu => (
                    "integrated GPU",
                    format!("integrated:{}", post_increment(&mut integrated)),
                ),
                DeviceType::Cpu => ("cpu", "cpu".to_string()),
                DeviceType::VirtualGpu => ("virtual GPU", "default".to_string()),
                DeviceType::Other => ("other", "default".to_string()),
            };
            DeviceInfo {
                name: format!("{} ({:?}, {})", info.name, info.backend, info.driver),
                kind: kind.into(),
                selector,
                model: Some(info.name.clone()),
                memory_bytes: None,
                kernel_cache: None,
            }
        })
        .collect())
}

/// The adapter name burn-wgpu will pick for `choice`, by cubecl's own rules: the N-th adapter
/// of the asked type, or for the default device wgpu's high-performance choice.
#[cfg(feature = "wgpu")]
fn wgpu_model(choice: &DeviceChoice) -> Result<String, BackendError> {
    use wgpu::DeviceType;
    let instance = wgpu_instance();
    let (wanted, n) = match choice {
        DeviceChoice::Default => {
            let options = wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
            };
            return futures_lite::future::block_on(instance.request_adapter(&options))
                .map(|a| a.get_info().name)
                .map_err(|_| BackendError::NoWgpuAdapter);
        }
        DeviceChoice::Index(n) => (DeviceType::DiscreteGpu, *n),
        DeviceChoice::Integrated(n) => (DeviceType::IntegratedGpu, *n),
        DeviceChoice::Cpu => (DeviceType::Cpu, 0),
    };
    let adapters =
        futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters
        .iter()
        .map(|a| a.get_info())
        .filter(|info| info.device_type == wanted)
        .nth(n)
        .map(|info| info.name)
        .ok_or_else(|| BackendError::NoSuchWgpuDevice(choice.clone()))
}

#[cfg(feature = "wgpu")]
fn post_increment(n: &mut usize) -> usize {
    *n += 1;
    *n - 1
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_devices() -> Result<Vec<DeviceInfo>, BackendError> {
    Err(BackendError::NotCompiled(BackendKind::Wgpu))
}

/// Each CUDA device's name and memory, from the driver API (not through cubecl, whose
/// configuration must be set before it first starts).
#[cfg(feature = "cuda")]
fn cuda_names() -> Result<Vec<(String, u64)>, BackendError> {
    use cudarc::driver::result;
    if cfg!(target_os = "linux") && !std::path::Path::new("/proc/driver/nvidia/version").exists() {
        return Err(BackendError::NoNvidiaDriver);
    }
    let query = || -> Result<Vec<(String, u64)>, result::DriverError> {
        result::init()?;
        (0..result::device::get_count()?)
            .map(|i| {
                let device = result::device::get(i)?;
                // SAFETY: `device` is a valid handle from `get` after `init`.
                let memory = unsafe { result::device::total_mem(device)? };
                Ok((result::device::get_name(device)?, memory as u64))
            })
            .collect()
    };
    // cudarc loads the driver library lazily and panics when it is missing: probe quietly.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let found = std::panic::catch_unwind(query);
    std::panic::set_hook(hook);
    match found {
        Ok(Ok(devices)) => Ok(devices),
        Ok(Err(err)) => Err(BackendError::CudaDriver(err.to_string())),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let first = message.lines().next().unwrap_or("").to_string();
            Err(BackendError::CudaDriver(first))
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda_devices() -> Result<Vec<DeviceInfo>, BackendError> {
    Ok(cuda_names()?
        .into_iter()
        .enumerate()
        .map(|(i, (name, memory))| DeviceInfo {
            name: format!("{name}, {:.1} GiB", memory as f64 / (1u64 << 30) as f64),
            kind: "NVIDIA GPU".into(),
            selector: i.to_string(),
            model: Some(name),
            memory_bytes: Some(memory),
            kernel_cache: None,
        })
        .collect())
}

/// The model of CUDA device `choice`.
#[cfg(feature = "cuda")]
fn cuda_model(choice: &DeviceChoice) -> Result<String, BackendError> {
    let index = match choice {
        DeviceChoice::Default => 0,
        DeviceChoice::Index(n) => *n,
        other => return Err(BackendError::CudaDeviceNotNumbered(other.clone())),
    };
    let names = cuda_names()?;
    let count = names.len();
    names
        .into_iter()
        .nth(index)
        .map(|(name, _)| name)
        .ok_or(BackendError::NoSuchCudaDevice { index, count })
}

#[cfg(not(feature = "cuda"))]
fn cuda_devices() -> Result<Vec<DeviceInfo>, BackendError> {
    Err(BackendError::NotCompiled(BackendKind::Cuda))
}

/// The GPU model that GPU backend `kind` will run on for `choice`, which its kernels are cached
/// under; the error says what to do when there is no such device.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub fn gpu_model(kind: BackendKind, choice: &DeviceChoice) -> Result<String, BackendError> {
    match kind {
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => wgpu_model(choice),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => cuda_model(choice),
        other => Err(BackendError::NotAGpuBackend(other)),
    }
}

/// The listing as text.
pub fn to_text(backends: &[BackendDevices]) -> String {
    let mut out = String::new();
    for b in backends {
        out.push_str(&format!("{}:\n", b.backend.name()));
        for d in &b.devices {
            out.push_str(&format!(
                "  --device {:<14} {} [{}]\n",
                d.selector, d.name, d.kind
            ));
            if let Some(cache) = &d.kernel_cache {
                out.push_str(&format!(
                    "    kernel cache: {}, {}\n",
                    cache.dir.display(),
                    cache.describe()
                ));
            }
        }
        if let Some(reason) = &b.unavailable {
            out.push_str(&format!("  unavailable: {reason}\n"));
        }
        if let Some(cudnn) = &b.cudnn {
            out.push_str(&format!("  cuDNN: {}\n", cudnn.describe()));
        }
    }
    let missing: Vec<_> = BackendKind::ALL
        .iter()
        .filter(|k| !k.is_compiled())
        .map(|k| k.name())
        .collect();
    if !missing.is_empty() {
        out.push_str(&format!(
            "not compiled in: {} (cargo features of the same names)\n",
            missing.join(", ")
        ));
    }
    out.push_str(&format!("default backend: {}\n", default_backend().name()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_backend_is_compiled_in() {
        assert!(default_backend().is_compiled());
    }
}
