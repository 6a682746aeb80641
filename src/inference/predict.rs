//! Class probabilities for a batch of pictures.

use alexnet_model::AlexNet;
use burn::data::dataloader::batcher::Batcher;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use serde::Serialize;

use crate::data::{CLASS_NAMES, FashionMnistBatch, FashionMnistBatcher, FashionMnistItem};

/// One class and its probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Class index in `0..10`.
    pub class: usize,
    /// Class name.
    pub label: &'static str,
    /// Softmax probability.
    pub probability: f32,
}

/// The `top` most probable classes of each item, most probable first, resized as in training.
pub fn predict<B: Backend>(
    net: &AlexNet<B>,
    items: Vec<FashionMnistItem>,
    image_size: usize,
    top: usize,
    device: &B::Device,
) -> Vec<Vec<Prediction>> {
    let count = items.len();
    if count == 0 {
        return Vec::new();
    }
    let batch: FashionMnistBatch<B> = FashionMnistBatcher::new(image_size).batch(items, device);
    let probabilities = softmax(net.forward(batch.images), 1);
    let classes = probabilities.dims()[1];
    let values: Vec<f32> = probabilities
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 data");
    values
        .chunks_exact(classes)
        .map(|row| {
            let mut ranked: Vec<Prediction> = row
                .iter()
                .enumerate()
                .map(|(class, &probability)| Prediction {
                    class,
                    label: CLASS_NAMES.get(class).copied().unwrap_or("?"),
                    probability,
                })
                .collect();
            ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
            ranked.truncate(top.max(1));
            ranked
        })
        .collect()
}
