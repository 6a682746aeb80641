//! The command line's spelling of the crate's enums: each value's name and its line in `--help`.
//! The enums themselves stay free of clap.

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::backend::{BackendKind, CudnnMode, TuneLevel};
use crate::data::Split;

impl ValueEnum for BackendKind {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self {
            Self::Cuda => "burn-cuda: NVIDIA GPUs",
            Self::Wgpu => "burn-wgpu: Vulkan / Metal / DirectX / OpenGL GPUs",
            Self::Flex => "burn-flex: Burn's fast pure-Rust CPU backend (SIMD + rayon)",
            Self::Ndarray => "burn-ndarray: the reference CPU backend",
        };
        Some(PossibleValue::new(self.name()).help(help))
    }
}

impl ValueEnum for TuneLevel {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self {
            Self::Minimal => "The fewest candidates per operation",
            Self::Balanced => "cubecl's default",
            Self::Extensive => "More candidates",
            Self::Full => "Every candidate",
        };
        Some(PossibleValue::new(self.name()).help(help))
    }
}

impl ValueEnum for CudnnMode {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Tf32, Self::Fp32, Self::Off]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let (name, help) = match self {
            Self::Tf32 => (
                "tf32",
                "Through cuDNN, TF32 tensor cores allowed (PyTorch's default for convolutions)",
            ),
            Self::Fp32 => ("fp32", "Through cuDNN in strict float32"),
            Self::Off => ("off", "Through Burn's own kernels"),
        };
        Some(PossibleValue::new(name).help(help))
    }
}

impl ValueEnum for Split {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Train, Self::Test]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let (name, help) = match self {
            Self::Train => ("train", "60,000 training images"),
            Self::Test => ("test", "10,000 test images"),
        };
        Some(PossibleValue::new(name).help(help))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line spells each value as the rest of the crate prints it (in config.json,
    /// reports and messages), and parses it back.
    #[test]
    fn values_are_spelled_as_the_crate_prints_them() {
        fn check<T: ValueEnum + PartialEq + std::fmt::Debug>(printed: impl Fn(&T) -> String) {
            for value in T::value_variants() {
                let name = value.to_possible_value().unwrap().get_name().to_string();
                assert_eq!(name, printed(value));
                assert_eq!(&T::from_str(&name, false).unwrap(), value, "{name}");
            }
        }
        check::<BackendKind>(|b| b.name().to_string());
        check::<TuneLevel>(|t| t.name().to_string());
        check::<CudnnMode>(|m| format!("{m:?}").to_lowercase());
        check::<Split>(|s| s.to_string());
    }
}
