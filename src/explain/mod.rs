//! Why the network predicts what it predicts: Grad-CAM (Selvaraju et al. 2017) or Grad-CAM++
//! (Chattopadhay et al. 2018) on the last convolution, and its picture over the image.
//!
//! Burn has no hooks on a layer's output, so the network is run in two parts: the layers up to
//! the last convolution's ReLU without autodiff, then the rest on the autodiff backend from that
//! activation, which is the one tensor that asks for a gradient. The parameters ask for none, so
//! the backward pass computes no weight gradients and needs no optimizer state.

mod picture;

use alexnet_model::{Activation, AlexNet, Layer};
use anyhow::{Result, bail};
use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use serde::Serialize;

pub use picture::{Legend, heatmap_png, overlay_png};

/// How the last convolution's channels are weighted into the map; both take the same one
/// gradient, so they cost the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
pub enum Method {
    /// Grad-CAM: each channel weighted by its gradient's mean.
    #[default]
    #[serde(rename = "gradcam")]
    #[value(name = "gradcam")]
    GradCam,
    /// Grad-CAM++: each channel weighted by its positive gradients, each scaled by the
    /// closed-form alpha of the paper's equation 19, as pytorch-grad-cam's `GradCAMPlusPlus`
    /// computes it; it covers several objects of a class better than Grad-CAM's mean.
    #[serde(rename = "gradcam++")]
    #[value(name = "gradcam++")]
    GradCamPlusPlus,
}

impl Method {
    /// Both methods.
    pub const ALL: [Method; 2] = [Method::GradCam, Method::GradCamPlusPlus];

    /// The method's name, as flags and JSON spell it.
    pub fn name(self) -> &'static str {
        match self {
            Method::GradCam => "gradcam",
            Method::GradCamPlusPlus => "gradcam++",
        }
    }

    /// The method's name in a picture's title or a line of text.
    pub fn title(self) -> &'static str {
        match self {
            Method::GradCam => "Grad-CAM",
            Method::GradCamPlusPlus => "Grad-CAM++",
        }
    }

    /// The method named `name`, as flags and JSON spell it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The channel weights `[batch, channels, 1, 1]` from the maps `A` and the score's gradient.
    fn weights<B: Backend>(self, maps: &Tensor<B, 4>, gradient: &Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Method::GradCam => gradient.clone().mean_dim(3).mean_dim(2),
            Method::GradCamPlusPlus => {
                let square = gradient.clone().powi_scalar(2);
                let cube = square.clone() * gradient.clone();
                let sums = maps.clone().sum_dim(3).sum_dim(2);
                let alpha = square.clone() / (square * 2.0 + sums * cube + 1e-6);
                let alpha = alpha.mask_fill(gradient.clone().equal_elem(0.0), 0.0);
                (gradient.clone().clamp_min(0.0) * alpha)
                    .sum_dim(3)
                    .sum_dim(2)
            }
        }
    }
}

/// What to explain of one image: a class (its top class where `None`), by a method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Target {
    /// The class whose score to explain; `None`: the image's top class.
    pub class: Option<usize>,
    /// How to weight the channels.
    pub method: Method,
}

impl Target {
    /// Each of `classes` by `method`.
    pub fn all(classes: &[Option<usize>], method: Method) -> Vec<Self> {
        classes
            .iter()
            .map(|&class| Self { class, method })
            .collect()
    }
}

/// One image's class-activation map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The class whose score was explained.
    pub class: usize,
    /// How it was computed.
    pub method: Method,
    /// The map on the last convolution's grid, row by row, scaled to [0, 1] as pytorch-grad-cam
    /// scales it: `(x - min) / (max - min)`, all zero where the map is flat.
    pub grid: Vec<Vec<f32>>,
}

/// What explains a batch of predictions on backend `B`, whatever autodiff backend computes it.
pub trait Explainer<B: Backend> {
    /// Each image's map for its target, and the logits.
    ///
    /// # Errors
    /// A class outside the network's classes.
    fn explain(
        &self,
        images: Tensor<B, 4>,
        targets: &[Target],
    ) -> Result<(Vec<Explanation>, Tensor<B, 2>)>;
}

impl<A: AutodiffBackend> Explainer<A::InnerBackend> for GradCam<A> {
    fn explain(
        &self,
        images: Tensor<A::InnerBackend, 4>,
        targets: &[Target],
    ) -> Result<(Vec<Explanation>, Tensor<A::InnerBackend, 2>)> {
        GradCam::explain(self, images, targets)
    }
}

/// Grad-CAM (and Grad-CAM++, which differs only in the channel weights) of a network: the
/// network without parameter gradients and where it is cut.
pub struct GradCam<B: AutodiffBackend> {
    net: AlexNet<B>,
    /// The same network without autodiff, for the layers up to the cut.
    inner: AlexNet<B::InnerBackend>,
    /// Index in [`AlexNet::layers`] of the ReLU after the last convolution: `net[11]` in d2l's
    /// `nn.Sequential`, `features[11]` in torchvision's network.
    cut: usize,
}

impl<B: AutodiffBackend> GradCam<B> {
    /// Grad-CAM of `net`.
    pub fn new(net: AlexNet<B>) -> Self {
        let net = net.no_grad();
        let layers = net.layers();
        let last_conv = layers
            .iter()
            .rposition(|layer| matches!(layer, Layer::Conv2d(_)))
            .expect("AlexNet has convolutions");
        debug_assert!(matches!(layers[last_conv + 1], Layer::ReLU(_)));
        Self {
            inner: net.valid(),
            net,
            cut: last_conv + 1,
        }
    }

    /// The map of each image `[batch, channels, side, side]` for its target, and the logits of
    /// the images.
    ///
    /// # Errors
    /// A class outside the network's classes.
    pub fn explain(
        &self,
        images: Tensor<B::InnerBackend, 4>,
        targets: &[Target],
    ) -> Result<(Vec<Explanation>, Tensor<B::InnerBackend, 2>)> {
        let [batch, ..] = images.dims();
        assert_eq!(targets.len(), batch, "one target per image");
        let maps = self.inner.layers()[..=self.cut]
            .iter()
            .fold(Activation::Maps(images), |x, layer| layer.forward(x));
        let Activation::Maps(maps) = maps else {
            unreachable!("a convolution's ReLU gives feature maps")
        };
        let tracked = Tensor::<B, 4>::from_inner(maps.clone()).require_grad();
        let logits = self.head(tracked.clone());
        let asked: Vec<Option<usize>> = targets.iter().map(|t| t.class).collect();
        let classes = chosen_classes(&logits.clone().inner(), &asked)?;
        let num_classes = logits.dims()[1];
        let one_hot = one_hot(&classes, num_classes, &logits.device());
        let gradients = (logits.clone() * one_hot).sum().backward();
        let gradient = tracked
            .grad(&gradients)
            .expect("the maps are tracked and reach the logits");
        let methods: Vec<Method> = targets.iter().map(|t| t.method).collect();
        let explained = explanations(maps, gradient, &classes, &methods);
        Ok((explained, logits.inner()))
    }

    /// The layers after the cut, as in evaluation: dropout is left out (it is active on an
    /// autodiff backend, and PyTorch's `model.eval()` turns it off).
    fn head(&self, maps: Tensor<B, 4>) -> Tensor<B, 2> {
        let logits = self.net.layers()[self.cut + 1..]
            .iter()
            .filter(|layer| !matches!(layer, Layer::Dropout(_)))
            .fold(Activation::Maps(maps), |x, layer| layer.forward(x));
        match logits {
            Activation::Vectors(logits) => logits,
            Activation::Maps(_) => unreachable!("the network ends in a linear layer"),
        }
    }
}

/// Each image's class: the one asked for, checked, or its top class.
fn chosen_classes<B: Backend>(
    logits: &Tensor<B, 2>,
    asked: &[Option<usize>],
) -> Result<Vec<usize>> {
    let num_classes = logits.dims()[1];
    let top: Vec<i64> = logits
        .clone()
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .to_vec()
        .expect("integer data");
    asked
        .iter()
        .zip(top)
        .map(|(asked, top)| match *asked {
            Some(class) if class >= num_classes => bail!(
                "class {class} is out of range: the network has {num_classes} classes (0 to {})",
                num_classes - 1
            ),
            Some(class) => Ok(class),
            None => Ok(top as usize),
        })
        .collect()
}

/// Rows of one-hot vectors `[classes.len(), num_classes]`: the score to differentiate is each
/// image's chosen logit, as pytorch-grad-cam's `ClassifierOutputTarget` takes it.
fn one_hot<B: Backend>(classes: &[usize], num_classes: usize, device: &B::Device) -> Tensor<B, 2> {
    let mut values = vec![0.0f32; classes.len() * num_classes];
    for (row, &class) in classes.iter().enumerate() {
        values[row * num_classes + class] = 1.0;
    }
    Tensor::from_data(
        TensorData::new(values, [classes.len(), num_classes]),
        device,
    )
}

/// The maps from the activations `A [batch, channels, h, w]` and the score's gradient: the
/// channels weighted by each image's method, summed, ReLU, then scaled to [0, 1].
fn explanations<B: Backend>(
    maps: Tensor<B, 4>,
    gradient: Tensor<B, 4>,
    classes: &[usize],
    methods: &[Method],
) -> Vec<Explanation> {
    let [_, _, height, width] = maps.dims();
    let cells = height * width;
    // Each method used, over the whole batch (cheap beside the pass that made the gradient).
    let cams: Vec<(Method, Vec<f32>)> = Method::ALL
        .into_iter()
        .filter(|method| methods.contains(method))
        .map(|method| {
            let weights = method.weights(&maps, &gradient);
            let cam = (maps.clone() * weights).sum_dim(1).clamp_min(0.0);
            (
                method,
                cam.into_data().convert::<f32>().to_vec().expect("f32 data"),
            )
        })
        .collect();
    classes
        .iter()
        .zip(methods)
        .enumerate()
        .map(|(image, (&class, &method))| {
            let (_, cam) = cams.iter().find(|(m, _)| *m == method).expect("computed");
            let map = &cam[image * cells..(image + 1) * cells];
            Explanation {
                class,
                method,
                grid: scaled(map)
                    .chunks_exact(width)
                    .map(<[f32]>::to_vec)
                    .collect(),
            }
        })
        .collect()
}

/// `(x - min) / (max - min)`; zeros where the map is flat (pytorch-grad-cam divides by
/// `max - min + 1e-7`, which gives the same zeros and differs by 1e-7 elsewhere).
fn scaled(map: &[f32]) -> Vec<f32> {
    let min = map.iter().copied().fold(f32::INFINITY, f32::min);
    let max = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = max - min;
    map.iter()
        .map(|&x| if range > 0.0 { (x - min) / range } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_scale_to_the_unit_range_and_flat_maps_to_zero() {
        assert_eq!(scaled(&[2.0, 4.0, 3.0]), vec![0.0, 1.0, 0.5]);
        assert_eq!(scaled(&[0.0; 4]), vec![0.0; 4]);
    }
}
