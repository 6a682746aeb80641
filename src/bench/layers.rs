//! `alexnet bench --layers`: where a training step's time goes, layer by layer.
//!
//! Each layer runs alone on the activation the layers before it produce, on the autodiff
//! backend, as in training (dropout active, the input tracked except for the images). Forward
//! time is the layer's call; backward time is `backward()` of `sum(y * g)` for a fixed random
//! `g`, which adds one element-wise product to the layer's own gradients.

use alexnet_model::{Activation, AlexNet, Layer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use serde::Serialize;

use super::{BenchSettings, median, time};

/// The cost of one layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerTiming {
    /// Position in the network, from 1.
    pub index: usize,
    /// PyTorch's class name.
    pub layer: &'static str,
    /// Output shape.
    pub output: Vec<usize>,
    /// Median forward time.
    pub forward_ms: f64,
    /// Median backward time.
    pub backward_ms: f64,
    /// Multiply-adds of forward and backward, for convolutions and linear layers: three times
    /// the forward's (output, input and weight gradients), two for the first layer, whose input
    /// (the images) needs no gradient.
    pub training_macs: Option<u64>,
    /// The same layer through Burn's stock implementation, where this build replaces it.
    pub stock: Option<StockTiming>,
}

/// Forward and backward time of Burn's stock layer on the same input.
#[derive(Debug, Clone, Serialize)]
pub struct StockTiming {
    /// Median forward time.
    pub forward_ms: f64,
    /// Median backward time.
    pub backward_ms: f64,
}

/// Times every layer of a fresh network on random images.
pub fn breakdown<B: AutodiffBackend>(
    net: &AlexNet<B>,
    device: &B::Device,
    settings: &BenchSettings,
) -> Vec<LayerTiming> {
    let side = settings.resize();
    let images = Tensor::<B, 4>::random(
        [settings.batch, settings.model.in_channels, side, side],
        Distribution::Uniform(0.0, 1.0),
        device,
    );
    let mut x = Activation::Maps(images);
    let layers = net.layers();
    let fast_kernels = alexnet_model::has_fast_cpu_kernels::<B>();
    layers
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            let input = match index {
                0 => x.clone(),
                _ => require_grad(x.clone()),
            };
            let apply = |x| layer.forward(x);
            let (forward_ms, backward_ms) = time_layer(&apply, &input, device, settings);
            let stock = stock_layer(layer).filter(|_| fast_kernels).map(|stock| {
                let (forward_ms, backward_ms) = time_layer(&stock, &input, device, settings);
                StockTiming {
                    forward_ms,
                    backward_ms,
                }
            });
            x = detach(layer.forward(input));
            LayerTiming {
                index: index + 1,
                layer: layer.name(),
                output: x.dims(),
                forward_ms,
                backward_ms,
                training_macs: forward_macs(layer, &x.dims())
                    .map(|m| m * (2 + index.min(1) as u64)),
                stock,
            }
        })
        .collect()
}

/// Burn's own implementation of the layers this crate has faster kernels for.
fn stock_layer<'a, B: AutodiffBackend>(
    layer: &Layer<'a, B>,
) -> Option<impl Fn(Activation<B>) -> Activation<B> + 'a> {
    let layer = *layer;
    matches!(
        layer,
        Layer::Conv2d(_) | Layer::ReLU(_) | Layer::MaxPool2d(_)
    )
    .then_some(move |x: Activation<B>| match (layer, x) {
        (Layer::Conv2d(conv), Activation::Maps(x)) => Activation::Maps(conv.forward(x)),
        (Layer::MaxPool2d(pool), Activation::Maps(x)) => Activation::Maps(pool.forward(x)),
        (Layer::ReLU(relu), Activation::Maps(x)) => Activation::Maps(relu.forward(x)),
        (Layer::ReLU(relu), Activation::Vectors(x)) => Activation::Vectors(relu.forward(x)),
        (_, x) => x,
    })
}

/// Median forward and backward milliseconds of `apply` on `input`.
fn time_layer<B: AutodiffBackend>(
    apply: &dyn Fn(Activation<B>) -> Activation<B>,
    input: &Activation<B>,
    device: &B::Device,
    settings: &BenchSettings,
) -> (f64, f64) {
    let mut forward = Vec::new();
    let mut backward = Vec::new();
    for step in 0..settings.warmup + settings.iters.max(1) {
        let (y, forward_seconds) = time::<B, _>(device, || apply(input.clone()));
        let loss = weighted_sum(y, device);
        B::sync(device).expect("device sync");
        let (_, backward_seconds) = time::<B, _>(device, || loss.backward());
        if step >= settings.warmup {
            forward.push(forward_seconds * 1e3);
            backward.push(backward_seconds * 1e3);
        }
    }
    (median(forward), median(backward))
}

/// `sum(y * g)` for a random `g`, so that `y`'s gradient is `g`.
fn weighted_sum<B: AutodiffBackend>(y: Activation<B>, device: &B::Device) -> Tensor<B, 1> {
    let uniform = Distribution::Uniform(-1.0, 1.0);
    match y {
        Activation::Maps(y) => (Tensor::random(y.shape(), uniform, device) * y).sum(),
        Activation::Vectors(y) => (Tensor::random(y.shape(), uniform, device) * y).sum(),
    }
}

fn require_grad<B: AutodiffBackend>(x: Activation<B>) -> Activation<B> {
    match x {
        Activation::Maps(x) => Activation::Maps(x.require_grad()),
        Activation::Vectors(x) => Activation::Vectors(x.require_grad()),
    }
}

fn detach<B: AutodiffBackend>(x: Activation<B>) -> Activation<B> {
    match x {
        Activation::Maps(x) => Activation::Maps(x.detach()),
        Activation::Vectors(x) => Activation::Vectors(x.detach()),
    }
}

/// Multiply-adds of a convolution or linear layer with output shape `output`.
fn forward_macs<B: AutodiffBackend>(layer: &Layer<'_, B>, output: &[usize]) -> Option<u64> {
    let product = |dims: &[usize]| dims.iter().product::<usize>() as u64;
    match layer {
        // Each output element takes Cin * kh * kw products.
        Layer::Conv2d(conv) => Some(product(output) * product(&conv.weight.dims()[1..])),
        // Each output element takes d_in products.
        Layer::Linear(fc) => Some(product(output) * fc.weight.dims()[0] as u64),
        _ => None,
    }
}

/// The breakdown as a table, with totals.
pub fn to_text(rows: &[LayerTiming]) -> String {
    let mut text = format!(
        "{:<3} {:<10} {:<20} {:>10} {:>11} {:>9}  {}\n",
        "#", "layer", "output", "fwd ms", "bwd ms", "GFLOP/s", "Burn stock fwd / bwd ms"
    );
    for row in rows {
        let gflops = row.training_macs.map_or(String::new(), |macs| {
            format!(
                "{:.1}",
                2.0 * macs as f64 / ((row.forward_ms + row.backward_ms) * 1e6)
            )
        });
        let stock = row.stock.as_ref().map_or(String::new(), |s| {
            format!(
                "{:.1} / {:.1} ({:.1}x our time)",
                s.forward_ms,
                s.backward_ms,
                (s.forward_ms + s.backward_ms) / (row.forward_ms + row.backward_ms)
            )
        });
        text += &format!(
            "{:<3} {:<10} {:<20} {:>10.1} {:>11.1} {:>9}  {}\n",
            row.index,
            row.layer,
            format!("{:?}", row.output),
            row.forward_ms,
            row.backward_ms,
            gflops,
            stock
        );
    }
    let forward: f64 = rows.iter().map(|r| r.forward_ms).sum();
    let backward: f64 = rows.iter().map(|r| r.backward_ms).sum();
    text + &format!(
        "    total {:>41.1} {:>11.1}   ({:.1} ms per step; the SGD update is not included)\n",
        forward,
        backward,
        forward + backward
    )
}
