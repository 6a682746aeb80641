//! Convolutions through NVIDIA's cuDNN on burn-cuda: the forward pass and both gradients, as a
//! backend extension with its own backward pass. Burn 0.21's CUDA convolutions are
//! implicit-GEMM kernels with one heuristic tiling each and a transposed-convolution fallback
//! for the input gradient; cuDNN measures its algorithms per shape and picks the fastest, as
//! PyTorch does.
//!
//! cuDNN is loaded at run time ([`library`]): a build with this module needs neither the CUDA
//! toolkit nor cuDNN, and where libcudnn is missing the convolutions stay Burn's. [`conv2d`]
//! keeps a model generic over every backend: it takes the cuDNN path when the backend *is*
//! burn-cuda (with or without fusion, under `Autodiff` or not) and hands the input back
//! otherwise, for Burn's stock layer.

mod backend;
mod descriptors;
mod launch;
mod library;
mod session;

use std::any::TypeId;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use burn::backend::Autodiff;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_fusion::Fusion;

use crate::any_backend::{cast, conv_shape, param_as, same};
use crate::conv::ConvShape;
use backend::{CudnnBackend, forward, tracked};
use launch::CubeCuda;

pub use library::{Library, library};
pub use session::Failure;

/// How cuDNN's convolutions may round float32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Math {
    /// TF32 tensor cores allowed (10-bit mantissa products, float32 sums): PyTorch's default
    /// for convolutions.
    Tf32,
    /// Strict float32 arithmetic.
    Fp32,
}

/// Whether the convolutions on burn-cuda go through cuDNN, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Through cuDNN with [`Math::Tf32`] (the default).
    Tf32,
    /// Through cuDNN with [`Math::Fp32`].
    Fp32,
    /// Through Burn's kernels.
    Off,
}

impl Mode {
    /// The math cuDNN runs in, or `None` when it is off.
    pub fn math(self) -> Option<Math> {
        match self {
            Self::Tf32 => Some(Math::Tf32),
            Self::Fp32 => Some(Math::Fp32),
            Self::Off => None,
        }
    }
}

static MODE: AtomicU8 = AtomicU8::new(0);

/// How many passes of each kind (see [`Pass`]) cuDNN has run in this process.
static PASSES: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// How many forward, input-gradient and weight-gradient passes cuDNN has run in this process
/// (passes that fell back to Burn's kernels are not counted).
pub fn passes_run() -> [u64; 3] {
    PASSES.each_ref().map(|count| count.load(Ordering::Relaxed))
}

/// Sets how the convolutions of every later forward pass on burn-cuda run.
pub fn set_mode(mode: Mode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

/// How the convolutions on burn-cuda run when cuDNN is available.
pub fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        0 => Mode::Tf32,
        1 => Mode::Fp32,
        _ => Mode::Off,
    }
}

/// The math of the convolutions that go through cuDNN now: `None` when cuDNN is switched off
/// or cannot be loaded.
pub fn active() -> Option<Math> {
    let math = mode().math()?;
    matches!(library(), Library::Loaded { .. }).then_some(math)
}

/// Whether backend `B` is one whose convolutions [`conv2d`] can run through cuDNN.
pub fn applies_to<B: Backend>() -> bool {
    type Fused = Fusion<CubeCuda>;
    [
        TypeId::of::<CubeCuda>(),
        TypeId::of::<Fused>(),
        TypeId::of::<Autodiff<CubeCuda>>(),
        TypeId::of::<Autodiff<Fused>>(),
    ]
    .contains(&TypeId::of::<B>())
}

/// One convolution as cuDNN plans it: its sizes and math.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv {
    shape: ConvShape,
    math: Math,
}

/// The three passes of a convolution, with their inputs and output (see [`Conv::dims`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// x, w -> y.
    Forward = 0,
    /// w, dy -> dx.
    InputGrad = 1,
    /// x, dy -> dw.
    WeightGrad = 2,
}

/// A tensor of a convolution.
#[derive(Debug, Clone, Copy)]
enum Operand {
    Input,
    Weight,
    Output,
}

impl Pass {
    /// What this pass writes.
    fn output(self) -> Operand {
        match self {
            Self::Forward => Operand::Output,
            Self::InputGrad => Operand::Input,
            Self::WeightGrad => Operand::Weight,
        }
    }
}

impl Conv {
    /// The dimensions of `operand` (and of its gradient).
    fn dims(&self, operand: Operand) -> [usize; 4] {
        let s = &self.shape;
        match operand {
            Operand::Input => [s.batch, s.channels_in, s.input[0], s.input[1]],
            Operand::Weight => [s.channels_out, s.channels_in, s.kernel[0], s.kernel[1]],
            Operand::Output => [s.batch, s.channels_out, s.output[0], s.output[1]],
        }
    }
}

/// `conv(x)` through cuDNN when `B` is a burn-cuda backend, cuDNN is available and on, and
/// `conv` is a plain float32 convolution (one group, no dilation, the same padding on both
/// sides); `Err(x)` otherwise.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if !applies_to::<B>() || x.dtype() != DType::F32 {
        return Err(x);
    }
    let (Some(math), Some(shape)) = (active(), conv_shape(conv, x.dims(), true)) else {
        return Err(x);
    };
    let spec = Conv { shape, math };
    let weight = conv.weight.val();
    let y = inference::<B, CubeCuda>(&spec, &weight, x)
        .or_else(|x| inference::<B, Fusion<CubeCuda>>(&spec, &weight, x))
        .or_else(|x| training::<B, CubeCuda>(&spec, &weight, x))
        .or_else(|x| training::<B, Fusion<CubeCuda>>(&spec, &weight, x))?;
    Ok(match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, shape.channels_out, 1, 1]),
        None => y,
    })
}

/// The convolution when `B` is `P`; `Err(x)` otherwise.
fn inference<B: Backend, P: CudnnBackend>(
    conv: &Conv,
    weight: &Tensor<B, 4>,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let x = cast::<_, Tensor<P, 4>>(x)?;
    let y = forward::<P>(
        conv,
        x.into_primitive().tensor(),
        param_as::<B, P, 4>(weight),
    );
    Ok(same(Tensor::<P, 4>::from_primitive(
        TensorPrimitive::Float(y),
    )))
}

/// The convolution as an autodiff node when `B` is `Autodiff<P>`; `Err(x)` otherwise.
fn training<B: Backend, P: CudnnBackend>(
    conv: &Conv,
    weight: &Tensor<B, 4>,
    x: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let x = cast::<_, Tensor<Autodiff<P>, 4>>(x)?;
    let w = param_as::<B, Autodiff<P>, 4>(weight);
    let y = tracked::<P>(*conv, x.into_primitive().tensor(), w);
    Ok(same(Tensor::<Autodiff<P>, 4>::from_primitive(
        TensorPrimitive::Float(y),
    )))
}
