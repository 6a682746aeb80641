//! What each compiled-in backend can see right now (`alexnet backends`), and the default
//! backend: the fastest one compiled in that has a usable device.

use serde::Serialize;

use super::BackendKind;

/// One device a backend can use, with the `--device` value that selects it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// The device's name (adapter name for wgpu).
    pub name: String,
    /// Its kind: cpu, discrete GPU, integrated GPU, …
    pub kind: String,
    /// The `--device` value that selects it.
    pub selector: String,
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
}

/// Probes every compiled-in backend.
pub fn probe_all() -> Vec<BackendDevices> {
    BackendKind::compiled().into_iter().map(probe).collect()
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
        }]),
        BackendKind::Wgpu => wgpu_devices(),
        BackendKind::Cuda => cuda_devices(),
    };
    let (devices, unavailable) = match found {
        Ok(devices) if devices.is_empty() => (devices, Some("no device found".to_string())),
        Ok(devices) => (devices, None),
        Err(reason) => (Vec::new(), Some(reason)),
    };
    BackendDevices {
        backend: kind,
        devices,
        unavailable,
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_devices() -> Result<Vec<DeviceInfo>, String> {
    use wgpu::DeviceType;
    let descriptor = wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    };
    let instance = wgpu::Instance::new(descriptor);
    let adapters =
        futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    if adapters.is_empty() {
        return Err(
            "no wgpu adapter: install GPU drivers, or Mesa's software Vulkan driver \
                    (apt-get install mesa-vulkan-drivers) to run on the CPU"
                .into(),
        );
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
            }
        })
        .collect())
}

#[cfg(feature = "wgpu")]
fn post_increment(n: &mut usize) -> usize {
    *n += 1;
    *n - 1
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_devices() -> Result<Vec<DeviceInfo>, String> {
    Err("not compiled in (cargo feature wgpu)".into())
}

#[cfg(feature = "cuda")]
fn cuda_devices() -> Result<Vec<DeviceInfo>, String> {
    use burn::tensor::backend::Backend;
    if cfg!(target_os = "linux") && !std::path::Path::new("/proc/driver/nvidia/version").exists() {
        return Err(
            "no NVIDIA driver loaded (/proc/driver/nvidia/version is missing); install \
                    the NVIDIA driver"
                .into(),
        );
    }
    // cubecl initialises CUDA by panicking when something is missing: probe quietly.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let count = std::panic::catch_unwind(|| <burn::backend::Cuda as Backend>::device_count(0));
    std::panic::set_hook(hook);
    match count {
        Ok(n) => Ok((0..n)
            .map(|i| DeviceInfo {
                name: format!("CUDA device {i}"),
                kind: "NVIDIA GPU".into(),
                selector: i.to_string(),
            })
            .collect()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let first = message.lines().next().unwrap_or("").to_string();
            Err(format!(
                "no usable CUDA driver ({first}); install the NVIDIA driver"
            ))
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_devices() -> Result<Vec<DeviceInfo>, String> {
    Err("not compiled in (cargo feature cuda)".into())
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
        }
        if let Some(reason) = &b.unavailable {
            out.push_str(&format!("  unavailable: {reason}\n"));
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
