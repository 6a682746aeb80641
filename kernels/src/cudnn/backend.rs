//! cuDNN's convolution as an op of burn-cuda's backends (with and without fusion) and as a
//! custom autodiff node of `Autodiff` over them, with its own backward pass, as in Burn's
//! "backend extension" guide. A pass cuDNN cannot run falls back to Burn's own kernel for it.

use std::sync::Once;

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{DType, TensorMetadata};
use burn_fusion::stream::OperationStreams;
use burn_fusion::{Fusion, NoOp};
use burn_ir::{BackendIr, InitOperationIr, OperationIr};

use super::launch::{self, CubeCuda};
use super::session::Failure;
use super::{Conv, Pass};

/// A backend whose convolution passes cuDNN can run: burn-cuda with or without fusion.
pub trait CudnnBackend: Backend {
    /// `pass` of `conv` through cuDNN on two of this backend's tensors (see [`Pass`]).
    fn cudnn(
        conv: &Conv,
        pass: Pass,
        inputs: [FloatTensor<Self>; 2],
    ) -> Result<FloatTensor<Self>, Failure>;
}

impl CudnnBackend for CubeCuda {
    fn cudnn(
        conv: &Conv,
        pass: Pass,
        inputs: [FloatTensor<Self>; 2],
    ) -> Result<FloatTensor<Self>, Failure> {
        launch::run(conv, pass, inputs)
    }
}

/// Under fusion the inputs are resolved to burn-cuda tensors (running what fusion has queued)
/// and the output is handed back to fusion as a new tensor.
impl CudnnBackend for Fusion<CubeCuda> {
    fn cudnn(
        conv: &Conv,
        pass: Pass,
        inputs: [FloatTensor<Self>; 2],
    ) -> Result<FloatTensor<Self>, Failure> {
        let client = inputs[0].client.clone();
        let inputs = inputs.map(|tensor| client.resolve_tensor_float::<CubeCuda>(tensor));
        let output = launch::run(conv, pass, inputs)?;
        let shape = output.shape();
        let handle = <CubeCuda as BackendIr>::float_tensor_handle(output);
        let init =
            InitOperationIr::create(shape, DType::F32, || client.register_tensor_handle(handle));
        let mut outputs = client.register(
            OperationStreams::default(),
            OperationIr::Init(init),
            NoOp::<CubeCuda>::new(),
        );
        Ok(outputs.remove(0))
    }
}

/// The convolution's output, through cuDNN or else Burn's kernel.
pub fn forward<B: CudnnBackend>(
    conv: &Conv,
    x: FloatTensor<B>,
    w: FloatTensor<B>,
) -> FloatTensor<B> {
    B::cudnn(conv, Pass::Forward, [x.clone(), w.clone()]).unwrap_or_else(|failure| {
        fell_back(&failure);
        B::conv2d(x, w, None, options(conv))
    })
}

/// The input's gradient for the output gradient `dy`, through cuDNN or else Burn's kernel.
fn input_grad<B: CudnnBackend>(conv: &Conv, [x, w, dy]: [FloatTensor<B>; 3]) -> FloatTensor<B> {
    B::cudnn(conv, Pass::InputGrad, [w.clone(), dy.clone()]).unwrap_or_else(|failure| {
        fell_back(&failure);
        B::conv2d_x_backward(x, w, dy, options(conv))
    })
}

/// The weight's gradient for the output gradient `dy`, through cuDNN or else Burn's kernel.
fn weight_grad<B: CudnnBackend>(conv: &Conv, [x, w, dy]: [FloatTensor<B>; 3]) -> FloatTensor<B> {
    B::cudnn(conv, Pass::WeightGrad, [x.clone(), dy.clone()]).unwrap_or_else(|failure| {
        fell_back(&failure);
        B::conv2d_weight_backward(x, w, dy, options(conv))
    })
}

fn options(conv: &Conv) -> ConvOptions<2> {
    ConvOptions::new(conv.shape.stride, conv.shape.padding, [1, 1], 1)
}

/// Says once per process that a pass fell back, and why.
fn fell_back(failure: &Failure) {
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        eprintln!("cuDNN could not run a convolution ({failure}); Burn's kernels run it instead")
    });
}

/// The convolution (no bias) as a node of the autodiff graph over `B`.
pub fn tracked<B: CudnnBackend>(
    conv: Conv,
    x: FloatTensor<Autodiff<B>>,
    w: FloatTensor<Autodiff<B>>,
) -> FloatTensor<Autodiff<B>> {
    match ConvBackward
        .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let w_state = prep.checkpoint(&w);
            let y = forward::<B>(&conv, x.primitive, w.primitive);
            prep.finish((x_state, w_state, conv), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward::<B>(&conv, x.primitive, w.primitive)),
    }
}

/// The backward pass: the input and weight gradients, each only when its parent wants it.
#[derive(Debug)]
struct ConvBackward;

impl<B: CudnnBackend> Backward<B, 2> for ConvBackward {
    type State = (NodeId, NodeId, Conv);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [x_parent, w_parent] = ops.parents.map(|parent| parent.map(|node| node.id));
        let (x_state, w_state, conv) = ops.state;
        let dy = grads.consume::<B>(&ops.node);
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let w = checkpointer.retrieve_node_output::<FloatTensor<B>>(w_state);
        if let Some(id) = x_parent {
            let dx = input_grad::<B>(&conv, [x.clone(), w.clone(), dy.clone()]);
            grads.register::<B>(id, dx);
        }
        if let Some(id) = w_parent {
            grads.register::<B>(id, weight_grad::<B>(&conv, [x, w, dy]));
        }
    }
}
