//! cuDNN on the CUDA backend (`--cudnn`, the `cudnn` cargo feature): whether it can be loaded,
//! which version, and the line that says how the convolutions will run.

use serde::Serialize;

/// How the convolutions on CUDA run (`--cudnn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CudnnMode {
    /// Through cuDNN, TF32 tensor cores allowed (PyTorch's default for convolutions).
    #[default]
    Tf32,
    /// Through cuDNN in strict float32.
    Fp32,
    /// Through Burn's own kernels.
    Off,
}

#[cfg(any(feature = "cudnn", test))]
impl CudnnMode {
    fn name(self) -> &'static str {
        match self {
            Self::Tf32 => "TF32 allowed",
            Self::Fp32 => "strict float32",
            Self::Off => "off",
        }
    }
}

/// cuDNN as `alexnet backends` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct CudnnStatus {
    /// Whether the CUDA backend's convolutions can run through cuDNN.
    pub available: bool,
    /// The loaded version ("9.10.2").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why it cannot be used, and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl CudnnStatus {
    /// The status as one line of text.
    pub fn describe(&self) -> String {
        match (&self.version, &self.reason) {
            (Some(version), _) => format!("cuDNN {version}, used for the convolutions (--cudnn)"),
            (None, Some(reason)) => format!("unavailable: {reason}"),
            (None, None) => "unavailable".to_string(),
        }
    }
}

/// Whether this build can load cuDNN, and its version.
#[cfg(feature = "cudnn")]
pub fn status() -> CudnnStatus {
    use alexnet_kernels::cudnn::{Library, library};
    match library() {
        Library::Loaded { version } => CudnnStatus {
            available: true,
            version: Some(version.clone()),
            reason: None,
        },
        Library::Unavailable { reason } => CudnnStatus {
            available: false,
            version: None,
            reason: Some(reason.clone()),
        },
    }
}

/// Whether this build can load cuDNN: it cannot without the `cudnn` feature.
#[cfg(not(feature = "cudnn"))]
pub fn status() -> CudnnStatus {
    CudnnStatus {
        available: false,
        version: None,
        reason: Some(
            "not compiled in: rebuild with `cargo build --release --features cuda,cudnn`".into(),
        ),
    }
}

/// Sets how the CUDA backend's convolutions run and says how, in one line.
#[cfg(feature = "cudnn")]
pub fn activate(mode: CudnnMode) -> String {
    use alexnet_kernels::cudnn::{Mode, set_mode};
    set_mode(match mode {
        CudnnMode::Tf32 => Mode::Tf32,
        CudnnMode::Fp32 => Mode::Fp32,
        CudnnMode::Off => Mode::Off,
    });
    convolutions_line(mode, &status())
}

/// The line [`activate`] says, for `mode` and what was found.
#[cfg(any(feature = "cudnn", test))]
fn convolutions_line(mode: CudnnMode, status: &CudnnStatus) -> String {
    match (mode, status) {
        (CudnnMode::Off, _) => "convolutions: Burn's kernels (--cudnn off)".to_string(),
        (
            _,
            CudnnStatus {
                version: Some(version),
                ..
            },
        ) => {
            format!("convolutions: cuDNN {version}, {}", mode.name())
        }
        (_, status) => format!(
            "convolutions: Burn's kernels, cuDNN is {}",
            status.describe()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(version: &str) -> CudnnStatus {
        CudnnStatus {
            available: true,
            version: Some(version.into()),
            reason: None,
        }
    }

    #[test]
    fn the_line_names_the_path_the_convolutions_take() {
        assert_eq!(
            convolutions_line(CudnnMode::Tf32, &found("9.10.2")),
            "convolutions: cuDNN 9.10.2, TF32 allowed"
        );
        assert_eq!(
            convolutions_line(CudnnMode::Fp32, &found("9.10.2")),
            "convolutions: cuDNN 9.10.2, strict float32"
        );
        assert_eq!(
            convolutions_line(CudnnMode::Off, &found("9.10.2")),
            "convolutions: Burn's kernels (--cudnn off)"
        );
        let missing = CudnnStatus {
            available: false,
            version: None,
            reason: Some("libcudnn was not found".into()),
        };
        assert_eq!(
            convolutions_line(CudnnMode::Tf32, &missing),
            "convolutions: Burn's kernels, cuDNN is unavailable: libcudnn was not found"
        );
    }
}
