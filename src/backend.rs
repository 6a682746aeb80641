//! The compute backends compiled into this binary, and monomorphised dispatch to one of them.

use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;

#[cfg(not(any(feature = "flex", feature = "ndarray")))]
compile_error!(
    "alexnet needs at least one backend: build with the cargo feature `flex` (the default) or \
     `ndarray`, e.g. `cargo build --release --features ndarray`"
);

/// A backend the user can ask for with `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// burn-flex: Burn's fast pure-Rust CPU backend (SIMD + rayon).
    Flex,
    /// burn-ndarray: the reference CPU backend.
    Ndarray,
}

impl BackendKind {
    /// Every backend, fastest first.
    pub const ALL: [BackendKind; 2] = [BackendKind::Flex, BackendKind::Ndarray];

    /// The name used by `--backend` and the cargo feature.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
        }
    }

    /// Whether this binary was built with the backend's cargo feature.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::Ndarray => cfg!(feature = "ndarray"),
        }
    }

    /// The backends compiled into this binary, fastest first.
    pub fn compiled() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// The fastest backend compiled in.
    pub fn default_compiled() -> BackendKind {
        Self::compiled()[0]
    }
}

/// Work that runs on whichever backend the user picked; `run` is monomorphised per backend.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Runs on backend `B` (with autodiff) on `device`, described for humans by `label`.
    fn run<B: AutodiffBackend>(self, device: B::Device, label: String) -> Self::Output;
}

/// Why a backend cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "backend {} is not compiled into this binary (it has: {}); rebuild with \
     `cargo build --release --features {}`",
    .0.name(),
    compiled_names(),
    .0.name()
)]
pub struct NotCompiled(pub BackendKind);

fn compiled_names() -> String {
    let names: Vec<_> = BackendKind::compiled().iter().map(|b| b.name()).collect();
    names.join(", ")
}

fn cpu_label(name: &str) -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("cpu ({name}, {threads} threads)")
}

/// Runs `task` on `kind`, or says how to build a binary that has it.
pub fn dispatch<T: BackendTask>(kind: BackendKind, task: T) -> Result<T::Output, NotCompiled> {
    match kind {
        #[cfg(feature = "flex")]
        BackendKind::Flex => {
            Ok(task.run::<Autodiff<burn::backend::Flex>>(Default::default(), cpu_label("flex")))
        }
        #[cfg(feature = "ndarray")]
        BackendKind::Ndarray => {
            Ok(task
                .run::<Autodiff<burn::backend::NdArray>>(Default::default(), cpu_label("ndarray")))
        }
        #[allow(unreachable_patterns)]
        other => Err(NotCompiled(other)),
    }
}
