//! cuDNN's handle, stream and per-shape plans, one set per thread and GPU (a cuDNN handle must
//! not be shared between threads). A plan holds a convolution's descriptors and, for each of
//! its three passes, the algorithm cuDNN measured fastest, found once per shape and math mode
//! (as PyTorch's `cudnn.benchmark` does) and kept for the life of the process.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;
use std::sync::Arc;

use cudarc::cudnn::result::{self, CudnnError};
use cudarc::cudnn::sys;
use cudarc::driver::{CudaContext, CudaStream, DriverError};

use super::descriptors::{ConvDesc, FilterDesc, TensorDesc};
use super::{Conv, Math, Pass};

/// Why a cuDNN call could not run (the caller falls back to Burn's kernel).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("cuDNN: {0:?}")]
    Cudnn(#[from] CudnnError),
    #[error("CUDA driver: {0}")]
    Driver(#[from] DriverError),
    #[error("Burn's CUDA runtime: {0}")]
    Runtime(String),
    #[error("cuDNN has no algorithm for this convolution in strict float32")]
    NoAlgorithm,
}

/// The device pointers of one pass: its two inputs and its output, in the order of the pass's
/// cuDNN call (forward: x, w -> y; data gradient: w, dy -> dx; weight gradient: x, dy -> dw).
pub struct Pointers {
    pub inputs: [u64; 2],
    pub output: u64,
    pub workspace: u64,
}

/// What one pass needs before it runs: its algorithm and workspace size.
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    algorithm: Algorithm,
    math: sys::cudnnMathType_t,
    /// Workspace bytes.
    pub workspace: usize,
}

/// A cuDNN algorithm of one pass.
#[derive(Debug, Clone, Copy)]
enum Algorithm {
    Forward(sys::cudnnConvolutionFwdAlgo_t),
    InputGrad(sys::cudnnConvolutionBwdDataAlgo_t),
    WeightGrad(sys::cudnnConvolutionBwdFilterAlgo_t),
}

thread_local! {
    static SESSIONS: RefCell<HashMap<usize, Session>> = RefCell::new(HashMap::new());
}

/// Runs `work` with this thread's session on GPU `ordinal`, made on first use.
pub fn with<T>(
    ordinal: usize,
    work: impl FnOnce(&mut Session) -> Result<T, Failure>,
) -> Result<T, Failure> {
    SESSIONS.with(|sessions| {
        let mut sessions = sessions.borrow_mut();
        let session = match sessions.entry(ordinal) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(Session::new(ordinal)?)
            }
        };
        session.context.bind_to_thread()?;
        work(session)
    })
}

/// A cuDNN handle on its own stream of GPU `ordinal`'s primary context (the one Burn's CUDA
/// runtime uses), with the plans made so far.
pub struct Session {
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    handle: Handle,
    plans: HashMap<Conv, Plan>,
}

impl Session {
    fn new(ordinal: usize) -> Result<Self, Failure> {
        let context = CudaContext::new(ordinal)?;
        let stream = context.new_stream()?;
        let handle = Handle(result::create_handle()?);
        // SAFETY: both are live; the stream outlives the handle (field order in `Session`
        // does not matter: the handle is destroyed before the stream's Arc drops).
        unsafe { result::set_stream(handle.0, stream.cu_stream() as sys::cudaStream_t)? };
        Ok(Self {
            context,
            stream,
            handle,
            plans: HashMap::new(),
        })
    }

    /// The algorithm of `pass` for `conv`, measured on first use.
    pub fn choose(&mut self, conv: &Conv, pass: Pass) -> Result<Choice, Failure> {
        let plan = match self.plans.entry(*conv) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(Plan::new(conv)?),
        };
        if let Some(choice) = plan.choices[pass as usize] {
            return Ok(choice);
        }
        let choice = plan.find(self.handle.0, pass, conv.math)?;
        plan.choices[pass as usize] = Some(choice);
        Ok(choice)
    }

    /// Runs `choice` (one pass of `conv`) on the session's stream and waits for it.
    pub fn run(&mut self, conv: &Conv, choice: Choice, pointers: &Pointers) -> Result<(), Failure> {
        let plan = self.plans.get(conv).expect("chosen before it runs");
        plan.launch(self.handle.0, choice, pointers)?;
        self.stream.synchronize()?;
        Ok(())
    }
}

struct Handle(sys::cudnnHandle_t);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by `create_handle`, destroyed once.
        let _ = unsafe { result::destroy_handle(self.0) };
    }
}

/// A convolution's descriptors and, per pass, the algorithm found for it.
struct Plan {
    x: TensorDesc,
    y: TensorDesc,
    w: FilterDesc,
    conv: ConvDesc,
    choices: [Option<Choice>; 3],
}

impl Plan {
    fn new(conv: &Conv) -> Result<Self, Failure> {
        let s = &conv.shape;
        let dims = |d: [usize; 4]| d.map(|n| n as c_int);
        let x = TensorDesc::new(dims([s.batch, s.channels_in, s.input[0], s.input[1]]))?;
        let y = TensorDesc::new(dims([s.batch, s.channels_out, s.output[0], s.output[1]]))?;
        let w = FilterDesc::new(dims([
            s.channels_out,
            s.channels_in,
            s.kernel[0],
            s.kernel[1],
        ]))?;
        let desc = ConvDesc::new(s.padding, s.stride)?;
        Ok(Self {
            x,
            y,
            w,
            conv: desc,
            choices: [None; 3],
        })
    }

    /// The fastest algorithm cuDNN measures for `pass`, among those `math` allows.
    fn find(&self, handle: sys::cudnnHandle_t, pass: Pass, math: Math) -> Result<Choice, Failure> {
        let start = match math {
            Math::Tf32 => sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
            Math::Fp32 => sys::cudnnMathType_t::CUDNN_FMA_MATH,
        };
        // SAFETY: live descriptor.
        unsafe { result::set_convolution_math_type(self.conv.0, start)? };
        let (x, y, w, conv) = (self.x.0, self.y.0, self.w.0, self.conv.0);
        let n = ALGORITHMS;
        // SAFETY: live descriptors; each `Find` writes at most `n` results to `perf`.
        let found = unsafe {
            match pass {
                Pass::Forward => measured(|count, perf| {
                    sys::cudnnFindConvolutionForwardAlgorithm(handle, x, w, conv, y, n, count, perf)
                }),
                Pass::InputGrad => measured(|count, perf| {
                    sys::cudnnFindConvolutionBackwardDataAlgorithm(
                        handle, w, y, conv, x, n, count, perf,
                    )
                }),
                Pass::WeightGrad => measured(|count, perf| {
                    sys::cudnnFindConvolutionBackwardFilterAlgorithm(
                        handle, x, y, conv, w, n, count, perf,
                    )
                }),
            }
        }?;
        found
            .into_iter()
            .find(|choice| {
                math == Math::Tf32 || choice.math == sys::cudnnMathType_t::CUDNN_FMA_MATH
            })
            .ok_or(Failure::NoAlgorithm)
    }

    /// Enqueues `choice`'s pass (output = 1 * conv(inputs) + 0 * output).
    fn launch(
        &self,
        handle: sys::cudnnHandle_t,
        choice: Choice,
        p: &Pointers,
    ) -> Result<(), Failure> {
        let (one, zero) = (1.0f32, 0.0f32);
        let (alpha, beta) = (
            &one as *const f32 as *const c_void,
            &zero as *const f32 as *const c_void,
        );
        let [a, b] = p.inputs.map(|ptr| ptr as *const c_void);
        let (out, work) = (p.output as *mut c_void, p.workspace as *mut c_void);
        // SAFETY: live descriptors matching the tensors behind the pointers (made from the same
        // `Conv`), a workspace of `choice.workspace` bytes, and an algorithm value cuDNN
        // returned for this pass.
        unsafe {
            result::set_convolution_math_type(self.conv.0, choice.math)?;
            match choice.algorithm {
                Algorithm::Forward(algorithm) => result::convolution_forward(
                    handle,
                    alpha,
                    self.x.0,
                    a,
                    self.w.0,
                    b,
                    self.conv.0,
                    algorithm,
                    work,
                    choice.workspace,
                    beta,
                    self.y.0,
                    out,
                ),
                Algorithm::InputGrad(algorithm) => result::convolution_backward_data(
                    handle,
                    alpha,
                    self.w.0,
                    a,
                    self.y.0,
                    b,
                    self.conv.0,
                    algorithm,
                    work,
                    choice.workspace,
                    beta,
                    self.x.0,
                    out,
                ),
                Algorithm::WeightGrad(algorithm) => result::convolution_backward_filter(
                    handle,
                    alpha,
                    self.x.0,
                    a,
                    self.y.0,
                    b,
                    self.conv.0,
                    algorithm,
                    work,
                    choice.workspace,
                    beta,
                    self.w.0,
                    out,
                ),
            }?;
        }
        Ok(())
    }
}

/// How many algorithms cuDNN is asked to measure per pass (it has fewer than this).
const ALGORITHMS: c_int = 16;

/// One of cuDNN's per-pass measurement results.
trait Measured: Copy {
    /// The algorithm, when it ran.
    fn choice(&self) -> Option<Choice>;
}

macro_rules! measured {
    ($perf:ty, $variant:ident) => {
        impl Measured for $perf {
            fn choice(&self) -> Option<Choice> {
                (self.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS).then_some(Choice {
                    algorithm: Algorithm::$variant(self.algo),
                    math: self.mathType,
                    workspace: self.memory,
                })
            }
        }
    };
}

measured!(sys::cudnnConvolutionFwdAlgoPerf_t, Forward);
measured!(sys::cudnnConvolutionBwdDataAlgoPerf_t, InputGrad);
measured!(sys::cudnnConvolutionBwdFilterAlgoPerf_t, WeightGrad);

/// The algorithms that ran, fastest first, from a cuDNN `Find` call that fills `perf` and
/// `count`.
fn measured<P: Measured>(
    find: impl FnOnce(&mut c_int, *mut P) -> sys::cudnnStatus_t,
) -> Result<Vec<Choice>, Failure> {
    let mut perf = [const { MaybeUninit::<P>::uninit() }; ALGORITHMS as usize];
    let mut count = 0;
    find(&mut count, perf.as_mut_ptr().cast()).result()?;
    let filled = &perf[..count.clamp(0, ALGORITHMS) as usize];
    // SAFETY: cuDNN filled the first `count` results.
    Ok(filled
        .iter()
        .filter_map(|p| unsafe { p.assume_init() }.choice())
        .collect())
}
