//! State dicts of d2l's and torchvision's networks as PyTorch writes them (their keys,
//! PyTorch's layouts), with weights from the formula `reference/pytorch/parity.py` uses, so
//! that both sides hold the same bits without a weight file in the repository.

use std::collections::HashMap;
use std::path::Path;

use alexnet::interop::{self, StateTensor};
use alexnet_model::{AlexNet, AlexNetConfig};
use burn::tensor::backend::Backend;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

/// One tensor: key, shape, and its little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    pub bytes: Vec<u8>,
}

impl Entry {
    /// The values of an F32 tensor.
    pub fn values(&self) -> Vec<f32> {
        self.bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
}

/// Chris Wellons' lowbias32, as `reference/pytorch/parity.py` computes it.
fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// Tensor `t` of the state dict: see `formula_weights` in `reference/pytorch/parity.py`.
fn formula_values(t: usize, shape: &[usize], weight_shape: &[usize]) -> Vec<f32> {
    let fan_in: usize = weight_shape[1..].iter().product();
    let bound = match shape.len() {
        1 => 1.0 / (fan_in as f64).sqrt(),
        _ => (6.0 / fan_in as f64).sqrt(),
    };
    let seed = (t as u64).wrapping_mul(0x9e37_79b9);
    let n: usize = shape.iter().product();
    (0..n as u64)
        .map(|i| {
            let u = f64::from(lowbias32((i + seed) as u32)) / 4_294_967_296.0;
            ((2.0 * u - 1.0) * bound) as f32
        })
        .collect()
}

/// d2l's state dict at input side `resize`, in PyTorch's order.
pub fn layout<B: Backend>(resize: usize) -> Vec<StateTensor> {
    layout_of::<B>(&AlexNetConfig::new().with_image_size(resize))
}

/// The state dict of `config`'s network (d2l's or torchvision's), in PyTorch's order.
pub fn layout_of<B: Backend>(config: &AlexNetConfig) -> Vec<StateTensor> {
    let net: AlexNet<B> = config.init(&Default::default());
    interop::state_dict(&net)
}

/// d2l's state dict at `resize` filled by the formula.
pub fn formula<B: Backend>(resize: usize) -> Vec<Entry> {
    formula_of::<B>(&AlexNetConfig::new().with_image_size(resize))
}

/// The state dict of `config`'s network filled by the formula.
pub fn formula_of<B: Backend>(config: &AlexNetConfig) -> Vec<Entry> {
    let dict = layout_of::<B>(config);
    dict.iter()
        .enumerate()
        .map(|(t, tensor)| {
            let weight_key = tensor.key.replace("bias", "weight");
            let weight = dict.iter().find(|w| w.key == weight_key).unwrap();
            let values = formula_values(t, &tensor.shape, &weight.shape);
            Entry {
                key: tensor.key.clone(),
                shape: tensor.shape.clone(),
                dtype: Dtype::F32,
                bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            }
        })
        .collect()
}

/// Writes `entries` as safetensors, as PyTorch's `save_file` does.
pub fn write(path: &Path, entries: &[Entry], metadata: Option<HashMap<String, String>>) {
    let views: Vec<(&str, TensorView<'_>)> = entries
        .iter()
        .map(|e| {
            let view = TensorView::new(e.dtype, e.shape.clone(), &e.bytes).unwrap();
            (e.key.as_str(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, metadata, path).unwrap();
}

/// Every tensor of a safetensors file, sorted by key, and its metadata.
pub fn read(path: &Path) -> (Vec<Entry>, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut entries: Vec<Entry> = file
        .tensors()
        .into_iter()
        .map(|(key, view)| Entry {
            key,
            shape: view.shape().to_vec(),
            dtype: view.dtype(),
            bytes: view.data().to_vec(),
        })
        .collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    (entries, metadata.metadata().clone().unwrap_or_default())
}
