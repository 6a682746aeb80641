//! Winograd's transformed kernels kept from one inference call to the next.
//!
//! A Winograd convolution first transforms the layer's whole weight, which at batch 1-7 costs
//! more than its saved products; so those batches took im2col + GEMM. In inference the weights do
//! not change between calls, and the transform can be made once. Burn has no notion of a
//! constant weight, so the weight is recognised by its buffer: a flex tensor's values sit in a
//! reference-counted buffer that burn-flex writes only when nothing else holds it (copy on
//! write). Holding a clone of that buffer therefore guarantees that its values stay as they
//! were transformed, with no comparison of values per call.
//!
//! A weight seen once is only remembered; its kernels are transformed the second time it comes,
//! so a one-shot pass costs nothing extra. Entries whose buffer only this cache still holds (the
//! layer is gone, or its weights were replaced, as training's update does) are dropped.

use std::sync::{Arc, Mutex, PoisonError};

use burn::tensor::Bytes;
use burn_flex::FlexTensor;

use super::values;
use crate::im2col::ConvShape;
use crate::winograd::{self, TransformedKernels};

/// At most this many layers' weights are remembered (AlexNet has four Winograd layers); the
/// oldest go first.
const CAPACITY: usize = 32;

struct Entry {
    /// The weight's buffer, held so that it cannot be written while remembered.
    buffer: Arc<Bytes>,
    /// Where the weight's values start and end in `buffer`.
    range: (usize, usize),
    /// `[O, C, R]` of the layer the weight was seen in.
    layer: [usize; 3],
    /// Made on the second sighting.
    kernels: Option<Arc<TransformedKernels>>,
}

static KEPT: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// The transformed kernels of `weight` (contiguous), when the layer takes Winograd with kernels
/// kept ([`winograd::applies_with_kernels_kept`]) and this weight was seen before.
pub(super) fn kept_kernels(
    weight: &FlexTensor,
    shape: &ConvShape,
) -> Option<Arc<TransformedKernels>> {
    if !winograd::applies_with_kernels_kept(shape) {
        return None;
    }
    let buffer = weight.data_arc();
    let range = weight.layout().contiguous_offsets()?;
    let layer = winograd::layer_of(shape);
    let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    kept.retain(|entry| Arc::strong_count(&entry.buffer) > 1);
    let seen = kept.iter_mut().find(|entry| {
        Arc::ptr_eq(&entry.buffer, &buffer) && entry.range == range && entry.layer == layer
    });
    match seen {
        Some(entry) => {
            let kernels = entry.kernels.get_or_insert_with(|| {
                Arc::new(winograd::transform_kernels(values(weight), shape))
            });
            Some(Arc::clone(kernels))
        }
        None => {
            if kept.len() == CAPACITY {
                kept.remove(0);
            }
            kept.push(Entry {
                buffer,
                range,
                layer,
                kernels: None,
            });
            None
        }
    }
}
