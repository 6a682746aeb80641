//! One cuDNN pass on burn-cuda's tensors. cubecl does not expose its CUDA stream, so a pass
//! waits for the work Burn has queued (a host sync), runs on the session's own stream and
//! waits for that before Burn's next kernel: two host syncs per pass, the price of ordering
//! without a shared stream.

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::cuda::CudaRuntime;
use cubecl::future::block_on;
use cubecl::server::Handle;

use super::session::{self, Failure, Pointers};
use super::{Conv, PASSES, Pass};
use std::sync::atomic::Ordering;

/// burn-cuda's backend without fusion (`burn::backend::Cuda` when fusion is off).
pub type CubeCuda = CubeBackend<CudaRuntime, f32, i32, u8>;

/// A tensor of [`CubeCuda`].
pub type CudaTensor = CubeTensor<CudaRuntime>;

/// `pass` of `conv` on `inputs` (in the order of [`Pointers::inputs`]), into a new tensor.
pub fn run(conv: &Conv, pass: Pass, inputs: [CudaTensor; 2]) -> Result<CudaTensor, Failure> {
    let inputs = inputs.map(into_contiguous);
    let client = inputs[0].client.clone();
    let device = inputs[0].device.clone();
    let output = empty_device_contiguous_dtype(
        client.clone(),
        device.clone(),
        Shape::from(conv.dims(pass.output()).to_vec()),
        DType::F32,
    );
    session::with(device.index, |session| {
        let choice = session.choose(conv, pass)?;
        let workspace = (choice.workspace > 0).then(|| client.empty(choice.workspace));
        // The resources keep their memory from being reused until the pass has run.
        let resource = |handle: &Handle| {
            client
                .get_resource(handle.clone())
                .map_err(|e| Failure::Runtime(format!("{e:?}")))
        };
        let [a, b] = [resource(&inputs[0].handle)?, resource(&inputs[1].handle)?];
        let out = resource(&output.handle)?;
        let work = workspace.as_ref().map(resource).transpose()?;
        let pointers = Pointers {
            inputs: [a.resource().ptr, b.resource().ptr],
            output: out.resource().ptr,
            workspace: work.as_ref().map_or(0, |w| w.resource().ptr),
        };
        block_on(client.sync()).map_err(|e| Failure::Runtime(format!("{e:?}")))?;
        session.run(conv, choice, &pointers)
    })?;
    PASSES[pass as usize].fetch_add(1, Ordering::Relaxed);
    Ok(output)
}
