//! `alexnet summary`: the layer table of the d2l chapter and the parameter count.

use alexnet_model::{AlexNetConfig, LayerShape};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::human::thousands;

/// Output shapes of every layer for one `1 x 1 x side x side` input, and the parameter count.
pub fn layer_table<B: Backend>(
    config: &AlexNetConfig,
    device: &B::Device,
) -> Result<(Vec<LayerShape>, usize), alexnet_model::AlexNetConfigError> {
    let model = config.try_init::<B>(device)?;
    let side = config.image_size;
    let input = Tensor::zeros([1, config.in_channels, side, side], device);
    Ok((model.layer_shapes(input), model.parameter_count()))
}

/// The table as d2l prints it (`Conv2d output shape:\t [1, 96, 54, 54]`), then the count.
pub fn format_table(rows: &[LayerShape], parameters: usize) -> String {
    let mut out = String::new();
    for row in rows {
        out.push_str(&format!("{} output shape:\t {:?}\n", row.layer, row.shape));
    }
    out.push_str(&format!("Total parameters: {}\n", thousands(parameters)));
    out
}
