//! A Triton Inference Server model configuration (`config.pbtxt`) for an exported model.

use super::{Batch, INPUT, OUTPUT};

/// The file of class names, one per line in label order, that `config.pbtxt` names so that
/// Triton's classification extension can answer with names.
pub const LABELS_FILE: &str = "labels.txt";

/// `config.pbtxt` for the ONNX model of a network with `channels x side x side` inputs and
/// `classes` outputs. With a dynamic batch Triton batches requests itself, up to `max_batch`
/// images per call; with a fixed one the batch is part of every shape and Triton cannot.
pub fn triton_config(
    name: &str,
    (channels, side, classes): (usize, usize, usize),
    batch: Batch,
    max_batch: usize,
) -> String {
    let (max_batch_size, batch_dims, batching) = match batch {
        Batch::Dynamic => (
            max_batch,
            String::new(),
            "# Requests are batched together by the server, as `alexnet serve` does.\n\
             dynamic_batching {\n  max_queue_delay_microseconds: 2000\n}\n",
        ),
        Batch::Fixed(n) => (0, format!("{n}, "), ""),
    };
    format!(
        "# Triton model configuration, written by `alexnet export --triton`.\n\
         name: \"{name}\"\n\
         platform: \"onnxruntime_onnx\"\n\
         max_batch_size: {max_batch_size}\n\
         input [\n  {{\n    name: \"{INPUT}\"\n    data_type: TYPE_FP32\n    \
         dims: [ {batch_dims}{channels}, {side}, {side} ]\n  }}\n]\n\
         output [\n  {{\n    name: \"{OUTPUT}\"\n    data_type: TYPE_FP32\n    \
         dims: [ {batch_dims}{classes} ]\n    label_filename: \"{LABELS_FILE}\"\n  }}\n]\n\
         {batching}"
    )
}
