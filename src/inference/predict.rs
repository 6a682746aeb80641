//! Class probabilities for a batch of pictures, read as the run's training read its images.

use std::path::Path;

use anyhow::{Result, bail};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::Serialize;

use super::images::load_image;
use crate::data::{Encoded, FashionMnistBatcher, FashionMnistItem, ImageTransform, read_header};

use super::LoadedModel;

/// One class and its probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub label: String,
    /// Softmax probability.
    pub probability: f32,
}

/// How a run's network reads an image file.
#[derive(Debug, Clone)]
pub enum Reader {
    /// A Fashion-MNIST run: grey, padded to a square and shrunk to 28x28 as Fashion-MNIST's
    /// pictures were made (inverted first with `invert`), then resized as in training.
    FashionMnist {
        /// The batcher of the run's input size.
        batcher: FashionMnistBatcher,
        /// Turn dark-on-light photos into Fashion-MNIST's light-on-dark.
        invert: bool,
    },
    /// An image-folder run: as its images were read in training.
    Folder(ImageTransform),
}

impl Reader {
    /// The reader of `model`'s run.
    pub fn of<B: Backend>(model: &LoadedModel<B>, invert: bool) -> Result<Self> {
        let side = model.config.image_size;
        if model.data.reads_fashion_mnist() {
            return Ok(Self::FashionMnist {
                batcher: FashionMnistBatcher::new(side),
                invert,
            });
        }
        if invert {
            bail!(
                "inverting applies to Fashion-MNIST runs (light objects on dark); this run \
                 learnt from an image folder and reads images as they are"
            );
        }
        Ok(Self::Folder(
            ImageTransform::new(side, model.config.in_channels)
                .with_preprocess(model.data.preprocess),
        ))
    }

    /// The network's input for `image`.
    pub fn read(&self, image: Encoded) -> Result<Vec<f32>> {
        match self {
            Self::FashionMnist { batcher, invert } => {
                Ok(batcher.pixels(&[load_image(image, *invert)?]))
            }
            Self::Folder(transform) => {
                let mut out = vec![0.0; transform.values()];
                transform.read_into(image, &mut out)?;
                Ok(out)
            }
        }
    }

    /// How `path`'s colours change on the way in, if they do: `grey to RGB` for a grey image and
    /// a colour network (as PIL's `convert("RGB")` does), `colour to grey` the other way.
    pub fn conversion(&self, path: &Path) -> Option<&'static str> {
        let channels = match self {
            Self::FashionMnist { .. } => 1,
            Self::Folder(transform) => transform.channels,
        };
        match (read_header(path).ok()?.grey, channels) {
            (true, 3) => Some("grey to RGB"),
            (false, 1) => Some("colour to grey"),
            _ => None,
        }
    }

    /// The network's input for a Fashion-MNIST item.
    pub fn item(&self, item: FashionMnistItem) -> Result<Vec<f32>> {
        match self {
            Self::FashionMnist { batcher, .. } => Ok(batcher.pixels(&[item])),
            Self::Folder(_) => bail!(
                "this run learnt from an image folder; Fashion-MNIST's test images are not its \
                 classes"
            ),
        }
    }
}

/// The `top` most probable classes of each input (`inputs`: each the values [`Reader::read`]
/// gives), most probable first.
pub fn predict<B: Backend>(
    model: &LoadedModel<B>,
    inputs: Vec<Vec<f32>>,
    top: usize,
    device: &B::Device,
) -> Vec<Vec<Prediction>> {
    if inputs.is_empty() {
        return Vec::new();
    }
    let logits = model.net.forward(input_batch(model, inputs, device));
    rank(logits, &model.data.classes, top)
}

/// The inputs (each the values [`Reader::read`] gives) as one batch for `model`.
pub fn input_batch<B: Backend>(
    model: &LoadedModel<B>,
    inputs: Vec<Vec<f32>>,
    device: &B::Device,
) -> Tensor<B, 4> {
    let (channels, side) = (model.config.in_channels, model.config.image_size);
    let count = inputs.len();
    let values: Vec<f32> = inputs.into_iter().flatten().collect();
    Tensor::from_data(
        TensorData::new(values, [count, channels, side, side]),
        device,
    )
}

/// Each row of `scores` as numbers: the logits `infer --logits` prints for comparison with
/// another runtime, or the probabilities `rank` orders.
pub fn logit_rows<B: Backend>(scores: Tensor<B, 2>) -> Vec<Vec<f32>> {
    let width = scores.dims()[1];
    let values: Vec<f32> = scores
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 data");
    values.chunks_exact(width).map(<[f32]>::to_vec).collect()
}

/// The `top` most probable classes of each row of `logits`, most probable first.
pub fn rank<B: Backend>(
    logits: Tensor<B, 2>,
    classes: &[String],
    top: usize,
) -> Vec<Vec<Prediction>> {
    logit_rows(softmax(logits, 1))
        .into_iter()
        .map(|row| {
            let mut ranked: Vec<Prediction> = row
                .iter()
                .enumerate()
                .map(|(class, &probability)| Prediction {
                    class,
                    label: classes.get(class).cloned().unwrap_or_else(|| "?".into()),
                    probability,
                })
                .collect();
            ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
            ranked.truncate(top.max(1));
            ranked
        })
        .collect()
}
