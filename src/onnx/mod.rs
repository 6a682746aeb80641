//! The network as an ONNX model, for runtimes Burn 0.21 cannot reach (its ONNX exporter came
//! after 0.21.0): ONNX Runtime, tract, Triton, TensorRT. AlexNet's graph is small and fixed, so
//! it is written here from [`AlexNet::layers`], each layer one or two operators, weights as
//! initializers, dropout left out (it is the identity at inference), and the class names and
//! the preprocessing in `metadata_props`. [`triton_config`] writes the model's Triton
//! configuration.

mod proto;
mod triton;

use std::ops::RangeInclusive;

use alexnet_model::{AlexNet, AlexNetConfig, Layer, Preprocess};
use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, MaxPool2d};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use prost::Message;
use serde::Serialize;

use crate::interop::{ARCH_KEY, CHANNELS_KEY, CLASSES_KEY, IMAGE_SIZE_KEY};
use proto::{
    ATTRIBUTE_INT, ATTRIBUTE_INTS, Attribute, Dimension, DimensionValue, FLOAT, INT64, Node,
    OperatorSetId, Shape, StringStringEntry, TensorType, TypeProto, ValueInfo,
};
pub use triton::{LABELS_FILE, triton_config};

/// The opsets this export writes. Every operator it uses (Conv, Relu, MaxPool, AveragePool,
/// Reshape, MatMul, Flatten, Gemm) computes the same from opset 11 to 21; later versions of
/// them only add element types.
pub const OPSETS: RangeInclusive<i64> = 11..=21;
/// The opset written unless asked otherwise: what ONNX Runtime, TensorRT and tract all read.
pub const DEFAULT_OPSET: i64 = 17;
/// The graph's input: preprocessed images `[batch, channels, side, side]`, float32.
pub const INPUT: &str = "images";
/// The graph's output: logits `[batch, classes]`, float32 (no softmax, as `forward`).
pub const OUTPUT: &str = "logits";
/// The metadata key of the preprocessing ([`InputSpec`] as JSON).
pub const PREPROCESS_KEY: &str = "alexnet.preprocess";
/// The name of the batch dimension when it is dynamic.
const BATCH_DIM: &str = "batch";

/// The batch dimension of the exported graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Any batch size, bound by the runtime (a named dimension).
    Dynamic,
    /// Exactly this many images per call (at least one).
    Fixed(usize),
}

impl Batch {
    /// The batch dimension as the graph has it: its name, or its size.
    pub fn dimension(self) -> String {
        match self {
            Self::Dynamic => BATCH_DIM.into(),
            Self::Fixed(n) => n.to_string(),
        }
    }
}

/// What the model is told about its surroundings: the network's configuration, how images
/// become its input, and its class names in label order.
pub struct Description<'a> {
    pub config: &'a AlexNetConfig,
    pub preprocess: Preprocess,
    pub classes: &'a [String],
}

/// How an image becomes the graph's input, as Pillow and NumPy spell it, so that another
/// runtime's caller can reproduce `alexnet infer`'s input (stored under [`PREPROCESS_KEY`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSpec {
    /// Pillow's `Image.convert` mode: `L` (ITU-R 601-2 luma) or `RGB`.
    pub mode: &'static str,
    /// The shorter side is resized to this many pixels, the longer in proportion
    /// (`int(resize * long / short)`).
    pub resize_shorter_to: usize,
    /// Pillow's `Image.resize` filter (antialiased when it shrinks).
    pub interpolation: &'static str,
    /// Then the centre `crop x crop` is kept, its top-left corner at
    /// `int(round((resized - crop) / 2))`, as torchvision's `CenterCrop`.
    pub center_crop: usize,
    /// Bytes become values in [0, 1] by this factor (1/255).
    pub scale: f64,
    /// Then each channel has its mean subtracted and is divided by its standard deviation
    /// (none for d2l's preprocessing: values stay in [0, 1]).
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    /// The input's layout.
    pub layout: &'static str,
}

impl InputSpec {
    pub fn new(config: &AlexNetConfig, preprocess: Preprocess) -> Self {
        let channels = config.in_channels;
        let mean_std: Option<Vec<(f32, f32)>> = (0..channels)
            .map(|c| preprocess.mean_std(c, channels))
            .collect();
        Self {
            mode: if channels == 3 { "RGB" } else { "L" },
            resize_shorter_to: preprocess.resize_to(config.image_size),
            interpolation: "bilinear",
            center_crop: config.image_size,
            scale: 1.0 / 255.0,
            mean: mean_std.as_ref().map(|m| m.iter().map(|v| v.0).collect()),
            std: mean_std.as_ref().map(|m| m.iter().map(|v| v.1).collect()),
            layout: "NCHW",
        }
    }
}

/// Why a network cannot be written as ONNX.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OnnxError {
    #[error(
        "ONNX opset {0} is not one this export writes: choose one from {start} to {end} \
         (--opset {DEFAULT_OPSET} unless a runtime needs another)",
        start = OPSETS.start(),
        end = OPSETS.end()
    )]
    UnknownOpset(i64),
    #[error("a batch holds at least one image; pass a positive size or `dynamic`")]
    EmptyBatch,
    #[error("the network's {0} has no ONNX form here (AlexNet's layers never use it)")]
    Unsupported(&'static str),
}

/// `net` as an ONNX model file (its protobuf bytes) at `opset`, for `batch` images per call.
pub fn to_onnx<B: Backend>(
    net: &AlexNet<B>,
    description: &Description,
    opset: i64,
    batch: Batch,
) -> Result<Vec<u8>, OnnxError> {
    if !OPSETS.contains(&opset) {
        return Err(OnnxError::UnknownOpset(opset));
    }
    if batch == Batch::Fixed(0) {
        return Err(OnnxError::EmptyBatch);
    }
    let config = description.config;
    let mut graph = GraphBuilder::new(config.image_size);
    for (index, layer) in net.layers().iter().enumerate() {
        graph.layer(index, layer)?;
    }
    let batch_dim = match batch {
        Batch::Dynamic => DimensionValue::DimParam(BATCH_DIM.into()),
        Batch::Fixed(n) => DimensionValue::DimValue(n as i64),
    };
    let side = config.image_size as i64;
    let input = value_info(
        INPUT,
        &batch_dim,
        &[config.in_channels as i64, side, side],
        "preprocessed images, as alexnet.preprocess in the metadata says",
    );
    let output = value_info(
        OUTPUT,
        &batch_dim,
        &[config.num_classes as i64],
        "one score per class (alexnet.classes); softmax gives probabilities",
    );
    let graph = graph.finish(format!("alexnet_{}", config.arch), input, output);
    let model = proto::Model {
        ir_version: ir_version(opset),
        producer_name: env!("CARGO_PKG_NAME").into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "AlexNet ({} network), {} classes, {}x{} input",
            config.arch, config.num_classes, side, side
        ),
        graph: Some(graph),
        opset_import: vec![OperatorSetId {
            domain: String::new(),
            version: opset,
        }],
        metadata_props: metadata(description),
    };
    Ok(model.encode_to_vec())
}

/// The newest IR version that opset `opset` came with (ONNX's own table in
/// `onnx.helper.VERSION_TABLE`): runtimes refuse a model whose IR version is newer than they
/// know, so the oldest that carries the opset is written.
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=11 => 6,
        12..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

fn metadata(description: &Description) -> Vec<StringStringEntry> {
    let config = description.config;
    let spec = InputSpec::new(config, description.preprocess);
    [
        (ARCH_KEY, config.arch.to_string()),
        (IMAGE_SIZE_KEY, config.image_size.to_string()),
        (CHANNELS_KEY, config.in_channels.to_string()),
        (
            CLASSES_KEY,
            serde_json::to_string(description.classes).expect("names serialise"),
        ),
        (
            PREPROCESS_KEY,
            serde_json::to_string(&spec).expect("the input spec serialises"),
        ),
    ]
    .into_iter()
    .map(|(key, value)| StringStringEntry {
        key: key.into(),
        value,
    })
    .collect()
}

fn value_info(name: &str, batch: &DimensionValue, rest: &[i64], doc: &str) -> ValueInfo {
    let dims = std::iter::once(batch.clone())
        .chain(rest.iter().map(|&d| DimensionValue::DimValue(d)))
        .map(|value| Dimension { value: Some(value) })
        .collect();
    ValueInfo {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: FLOAT,
                shape: Some(Shape { dim: dims }),
            }),
        }),
        doc_string: doc.into(),
    }
}

/// The graph as it is written, layer by layer: the operators so far, the weights, the name of
/// the tensor the last operator made, and the feature maps' channels and side there.
struct GraphBuilder {
    nodes: Vec<Node>,
    initializers: Vec<proto::Tensor>,
    current: String,
    channels: usize,
    side: usize,
}

impl GraphBuilder {
    fn new(image_size: usize) -> Self {
        Self {
            nodes: Vec::new(),
            initializers: Vec::new(),
            current: INPUT.into(),
            channels: 0,
            side: image_size,
        }
    }

    /// Appends layer `index` of [`AlexNet::layers`] (dropout adds nothing).
    fn layer<B: Backend>(&mut self, index: usize, layer: &Layer<B>) -> Result<(), OnnxError> {
        let name = format!("{}{index}", layer.name().to_lowercase());
        match layer {
            Layer::Conv2d(conv) => self.conv(&name, conv)?,
            Layer::ReLU(_) => self.node(&name, "Relu", vec![], vec![]),
            Layer::MaxPool2d(pool) => self.max_pool(&name, pool)?,
            Layer::AdaptiveAvgPool2d(pool) => self.adaptive_avg_pool(&name, pool),
            Layer::Flatten => self.node(&name, "Flatten", vec![], vec![int("axis", 1)]),
            Layer::Linear(fc) => {
                let weight = self.weight(&format!("{name}.weight"), &fc.weight);
                let bias = fc
                    .bias
                    .as_ref()
                    .map(|b| self.weight(&format!("{name}.bias"), b));
                // Burn keeps the weight as [inputs, outputs]: Y = X·W + b, Gemm's default.
                self.node(
                    &name,
                    "Gemm",
                    [weight].into_iter().chain(bias).collect(),
                    vec![],
                );
            }
            Layer::Dropout(_) => {}
        }
        Ok(())
    }

    fn conv<B: Backend>(&mut self, name: &str, conv: &Conv2d<B>) -> Result<(), OnnxError> {
        let pads = pads(&conv.padding)?;
        let weight = self.weight(&format!("{name}.weight"), &conv.weight);
        let bias = conv
            .bias
            .as_ref()
            .map(|b| self.weight(&format!("{name}.bias"), b));
        let attributes = vec![
            ints("kernel_shape", &conv.kernel_size),
            ints("strides", &conv.stride),
            ints("pads", &pads),
            ints("dilations", &conv.dilation),
            int("group", conv.groups as i64),
        ];
        self.node(
            name,
            "Conv",
            [weight].into_iter().chain(bias).collect(),
            attributes,
        );
        self.channels = conv.weight.dims()[0];
        self.side = window_output(
            self.side,
            conv.kernel_size[0],
            conv.stride[0],
            conv.dilation[0],
            &pads,
            false,
        );
        Ok(())
    }

    fn max_pool(&mut self, name: &str, pool: &MaxPool2d) -> Result<(), OnnxError> {
        let pads = pads(&pool.padding)?;
        let attributes = vec![
            ints("kernel_shape", &pool.kernel_size),
            ints("strides", &pool.stride),
            ints("pads", &pads),
            ints("dilations", &pool.dilation),
            int("ceil_mode", i64::from(pool.ceil_mode)),
        ];
        self.node(name, "MaxPool", vec![], attributes);
        let (k, s, d) = (pool.kernel_size[0], pool.stride[0], pool.dilation[0]);
        self.side = window_output(self.side, k, s, d, &pads, pool.ceil_mode);
        Ok(())
    }

    /// ONNX has no adaptive pool. Where the map already has the output's side it is left out;
    /// where the side divides evenly it is an `AveragePool`; otherwise (windows of unequal
    /// sizes, or overlapping when the map is smaller) each output is a fixed average of input
    /// pixels, so the maps are flattened per channel and multiplied by that averaging matrix.
    fn adaptive_avg_pool(&mut self, name: &str, pool: &AdaptiveAvgPool2d) {
        let [out, out_w] = pool.output_size;
        debug_assert_eq!(out, out_w, "AlexNet's adaptive pool is square");
        let side = self.side;
        if side == out {
            return;
        }
        if side.is_multiple_of(out) {
            let k = side / out;
            let attributes = vec![ints("kernel_shape", &[k, k]), ints("strides", &[k, k])];
            self.node(name, "AveragePool", vec![], attributes);
        } else {
            let shape = self.int64s(&format!("{name}.shape"), &[0, self.channels as i64, -1]);
            self.node(&format!("{name}.flat"), "Reshape", vec![shape], vec![]);
            let averages = averaging_matrix(side, out);
            let matrix = self.floats(
                &format!("{name}.averages"),
                &[(side * side) as i64, (out * out) as i64],
                &averages,
            );
            self.node(name, "MatMul", vec![matrix], vec![]);
        }
        self.side = out;
    }

    /// Adds an operator on the current tensor (and `extra` inputs); its output becomes current.
    fn node(&mut self, name: &str, op: &str, extra: Vec<String>, attribute: Vec<Attribute>) {
        let input = std::iter::once(std::mem::take(&mut self.current))
            .chain(extra)
            .collect();
        self.current = name.to_string();
        self.nodes.push(Node {
            input,
            output: vec![name.into()],
            name: name.into(),
            op_type: op.into(),
            attribute,
        });
    }

    fn weight<const D: usize, B: Backend>(
        &mut self,
        name: &str,
        param: &Param<Tensor<B, D>>,
    ) -> String {
        let tensor = param.val();
        let dims: Vec<i64> = tensor.dims().iter().map(|&d| d as i64).collect();
        let values = tensor.into_data().convert::<f32>();
        self.floats(name, &dims, values_of(&values))
    }

    fn floats(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, dims, FLOAT, raw_data)
    }

    fn int64s(&mut self, name: &str, values: &[i64]) -> String {
        let raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, &[values.len() as i64], INT64, raw_data)
    }

    fn initializer(
        &mut self,
        name: &str,
        dims: &[i64],
        data_type: i32,
        raw_data: Vec<u8>,
    ) -> String {
        self.initializers.push(proto::Tensor {
            dims: dims.to_vec(),
            data_type,
            name: name.into(),
            raw_data,
        });
        name.into()
    }

    /// The graph, its last operator renamed to write the output.
    fn finish(mut self, name: String, input: ValueInfo, output: ValueInfo) -> proto::Graph {
        let last = self.nodes.last_mut().expect("AlexNet has layers");
        last.output = vec![OUTPUT.into()];
        proto::Graph {
            node: self.nodes,
            name,
            initializer: self.initializers,
            doc_string: String::new(),
            input: vec![input],
            output: vec![output],
        }
    }
}

fn values_of(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>().expect("converted to f32")
}

/// ONNX's `pads`: `[top, left, bottom, right]`, the order of Burn's explicit padding.
fn pads(padding: &PaddingConfig2d) -> Result<[usize; 4], OnnxError> {
    match *padding {
        PaddingConfig2d::Valid => Ok([0; 4]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Ok([top, left, bottom, right]),
        PaddingConfig2d::Same => Err(OnnxError::Unsupported("`same` padding")),
    }
}

/// The side of a window operator's output (rows; AlexNet's windows are square).
fn window_output(
    side: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: &[usize; 4],
    ceil: bool,
) -> usize {
    let span = side + pads[0] + pads[2] - dilation * (kernel - 1) - 1;
    let round_up = if ceil { stride - 1 } else { 0 };
    (span + round_up) / stride + 1
}

/// The `[side², out²]` matrix whose column `i·out + j` averages output cell (i, j)'s window of
/// a `side x side` map, row-major: rows `floor(i·side/out)` to `ceil((i+1)·side/out)`, and the
/// same for columns, as PyTorch's and Burn's adaptive pools choose them.
fn averaging_matrix(side: usize, out: usize) -> Vec<f32> {
    let window = |i: usize| (i * side / out)..((i + 1) * side).div_ceil(out);
    let mut matrix = vec![0.0; side * side * out * out];
    for (i, j) in (0..out).flat_map(|i| (0..out).map(move |j| (i, j))) {
        let (rows, columns) = (window(i), window(j));
        let weight = 1.0 / (rows.len() * columns.len()) as f32;
        for (r, c) in rows.flat_map(|r| columns.clone().map(move |c| (r, c))) {
            matrix[(r * side + c) * out * out + i * out + j] = weight;
        }
    }
    matrix
}

fn int(name: &str, value: i64) -> Attribute {
    Attribute {
        name: name.into(),
        i: value,
        ints: Vec::new(),
        r#type: ATTRIBUTE_INT,
    }
}

fn ints(name: &str, values: &[usize]) -> Attribute {
    Attribute {
        name: name.into(),
        i: 0,
        ints: values.iter().map(|&v| v as i64).collect(),
        r#type: ATTRIBUTE_INTS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_opset_gets_the_ir_version_it_came_with() {
        assert_eq!(ir_version(11), 6);
        assert_eq!(ir_version(13), 7);
        assert_eq!(ir_version(17), 8);
        assert_eq!(ir_version(19), 9);
        assert_eq!(ir_version(21), 10);
    }

    #[test]
    fn the_averaging_matrix_averages_each_window_once() {
        // 3 -> 6 (the ImageNet network at 127 px): each output reads one or two inputs.
        for (side, out) in [(3, 6), (13, 6), (5, 6), (12, 6)] {
            let m = averaging_matrix(side, out);
            for column in 0..out * out {
                let total: f32 = (0..side * side).map(|r| m[r * out * out + column]).sum();
                assert!(
                    (total - 1.0).abs() < 1e-6,
                    "{side}->{out} column {column}: {total}"
                );
            }
        }
        // 13 -> 6: output 0 averages rows and columns 0..3 (ceil(13/6) = 3).
        let m = averaging_matrix(13, 6);
        assert_eq!(m[(2 * 13 + 2) * 36], 1.0 / 9.0);
        assert_eq!(m[(3 * 13) * 36], 0.0);
    }

    #[test]
    fn window_sides_follow_the_networks() {
        // d2l's conv1 at 224: 11x11/4 pad 1 -> 54; its pool 3/2 -> 26.
        assert_eq!(window_output(224, 11, 4, 1, &[1; 4], false), 54);
        assert_eq!(window_output(54, 3, 2, 1, &[0; 4], false), 26);
        assert_eq!(window_output(54, 3, 2, 1, &[0; 4], true), 27);
    }
}
