//! Fine-tuning's surgery on the network: start a network from another one's weights (a new
//! output layer when the classes differ, the first convolution adapted when the channels
//! differ), freeze the convolutions, and name the output layer's parameters.

use burn::module::{Module, Param, ParamId};
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{AlexNet, Arch};

/// What [`AlexNet::take_weights_from`] did with each layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Layers copied as they were.
    pub loaded: Vec<&'static str>,
    /// `conv1` adapted to another channel count, and how.
    pub adapted: Option<String>,
    /// Layers left as initialised (the output layer, for another class count).
    pub reinitialised: Vec<&'static str>,
}

/// Why one network's weights cannot start another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// The networks are of different architectures: no layer but the input's has the same
    /// shape in both.
    Arch {
        /// The source network's.
        source: Arch,
        /// This network's.
        target: Arch,
    },
    /// The flattened feature maps differ in width (the input sizes differ), so the linear
    /// layers cannot be reused.
    FlattenWidth {
        /// The source network's flatten width.
        source_width: usize,
        /// This network's.
        target_width: usize,
    },
    /// Neither 1 nor 3 channels on one side.
    Channels {
        /// The source network's input channels.
        source_channels: usize,
        /// This network's.
        target_channels: usize,
    },
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Arch { source, target } => write!(
                f,
                "the source is {source}'s AlexNet but this network is {target}'s (--arch \
                 {source} would take its weights)"
            ),
            Self::FlattenWidth {
                source_width,
                target_width,
            } => write!(
                f,
                "the first linear layer takes {source_width} inputs in the source network but \
                 {target_width} in this one (the input size differs)"
            ),
            Self::Channels {
                source_channels,
                target_channels,
            } => write!(
                f,
                "cannot adapt {source_channels} input channels to {target_channels}"
            ),
        }
    }
}

impl std::error::Error for TransferError {}

impl<B: Backend> AlexNet<B> {
    /// This network (freshly initialised) with `source`'s weights wherever they fit: every
    /// layer when the shapes agree; the output layer kept as initialised when the class counts
    /// differ; `conv1` adapted when the channel counts differ (see [`adapt_channels`]). The
    /// architectures and the flatten widths must agree.
    pub fn take_weights_from(
        mut self,
        source: AlexNet<B>,
    ) -> Result<(Self, Transfer), TransferError> {
        if source.arch() != self.arch() {
            return Err(TransferError::Arch {
                source: source.arch(),
                target: self.arch(),
            });
        }
        let width = |net: &AlexNet<B>| net.fc1.weight.shape().dims::<2>()[0];
        let (source_width, target_width) = (width(&source), width(&self));
        if source_width != target_width {
            return Err(TransferError::FlattenWidth {
                source_width,
                target_width,
            });
        }
        let mut transfer = Transfer::default();
        let channels = |net: &AlexNet<B>| net.conv1.weight.shape().dims::<4>()[1];
        let (from, to) = (channels(&source), channels(&self));
        if from == to {
            self.conv1 = source.conv1;
            transfer.loaded.push("conv1");
        } else {
            let weight =
                adapt_channels(source.conv1.weight.val(), to).ok_or(TransferError::Channels {
                    source_channels: from,
                    target_channels: to,
                })?;
            self.conv1.weight = Param::initialized(ParamId::new(), weight);
            self.conv1.bias = source.conv1.bias;
            transfer.adapted = Some(
                match to {
                    3 => {
                        "conv1 from 1 to 3 channels (grey weights / 3 on each of red, green, blue)"
                    }
                    _ => "conv1 from 3 to 1 channel (red, green and blue weights summed)",
                }
                .into(),
            );
        }
        self.conv2 = source.conv2;
        self.conv3 = source.conv3;
        self.conv4 = source.conv4;
        self.conv5 = source.conv5;
        self.fc1 = source.fc1;
        self.fc2 = source.fc2;
        transfer
            .loaded
            .extend(["conv2", "conv3", "conv4", "conv5", "fc1", "fc2"]);
        let outputs = |fc: &Linear<B>| fc.weight.shape().dims::<2>()[1];
        if outputs(&source.fc3) == outputs(&self.fc3) {
            self.fc3 = source.fc3;
            transfer.loaded.push("fc3");
        } else {
            transfer.reinitialised.push("fc3");
        }
        Ok((self, transfer))
    }

    /// The network with its five convolutions frozen: they get no gradient, so no optimizer
    /// moves them (and their backward pass is skipped).
    pub fn freeze_features(mut self) -> Self {
        self.conv1 = self.conv1.no_grad();
        self.conv2 = self.conv2.no_grad();
        self.conv3 = self.conv3.no_grad();
        self.conv4 = self.conv4.no_grad();
        self.conv5 = self.conv5.no_grad();
        self
    }

    /// The output layer's weight and bias: the parameters a new head trains.
    pub fn head(&self) -> (&Param<Tensor<B, 2>>, Option<&Param<Tensor<B, 1>>>) {
        (&self.fc3.weight, self.fc3.bias.as_ref())
    }

    /// The five convolutions' weights and biases, flattened, in order: what
    /// [`AlexNet::freeze_features`] keeps fixed.
    pub fn feature_values(&self) -> Vec<f32> {
        [
            &self.conv1,
            &self.conv2,
            &self.conv3,
            &self.conv4,
            &self.conv5,
        ]
        .into_iter()
        .flat_map(|conv| {
            let values =
                |data: burn::tensor::TensorData| data.to_vec::<f32>().expect("float parameters");
            let weight = values(conv.weight.val().into_data());
            let bias = conv.bias.as_ref().map(|b| values(b.val().into_data()));
            weight.into_iter().chain(bias.into_iter().flatten())
        })
        .collect()
    }
}

/// A first convolution's weight `[96, c, k, k]` for `to` input channels such that a grey image
/// gives the same activations either way: grey weights divided by 3 on each of three channels
/// (a grey image shown as three equal planes sums back to the grey response), or three
/// channels' weights summed into one (the colour network's response to a grey image). `None`
/// for other channel counts.
pub fn adapt_channels<B: Backend>(weight: Tensor<B, 4>, to: usize) -> Option<Tensor<B, 4>> {
    let from = weight.dims()[1];
    match (from, to) {
        (1, 3) => Some(weight.div_scalar(3.0).repeat_dim(1, 3)),
        (3, 1) => Some(weight.sum_dim(1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlexNetConfig;
    use burn::backend::Flex;

    fn net(classes: usize, channels: usize, side: usize) -> AlexNet<Flex> {
        AlexNetConfig::new()
            .with_num_classes(classes)
            .with_in_channels(channels)
            .with_image_size(side)
            .init(&Default::default())
    }

    fn values<const D: usize>(p: &Param<Tensor<Flex, D>>) -> Vec<f32> {
        p.val().into_data().to_vec().unwrap()
    }

    #[test]
    fn same_shapes_copy_every_layer() {
        let source = net(10, 1, 65);
        let expected = source.feature_values();
        let head = values(source.head().0);
        let (taken, transfer) = net(10, 1, 65).take_weights_from(source).unwrap();
        assert_eq!(taken.feature_values(), expected);
        assert_eq!(values(taken.head().0), head);
        assert!(transfer.reinitialised.is_empty() && transfer.adapted.is_none());
        assert_eq!(transfer.loaded.len(), 8);
    }

    #[test]
    fn other_classes_keep_the_new_head() {
        let source = net(10, 1, 65);
        let features = source.feature_values();
        let fresh = net(4, 1, 65);
        let fresh_head = values(fresh.head().0);
        let (taken, transfer) = fresh.take_weights_from(source).unwrap();
        assert_eq!(taken.feature_values(), features);
        assert_eq!(values(taken.head().0), fresh_head);
        assert_eq!(transfer.reinitialised, ["fc3"]);
    }

    #[test]
    fn adapted_first_convolutions_answer_grey_images_alike() {
        let device = Default::default();
        let grey = Tensor::<Flex, 4>::random(
            [2, 1, 65, 65],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let colour = grey.clone().repeat_dim(1, 3);
        let source = net(10, 1, 65);
        let expected = source.forward(grey.clone());
        let (rgb, transfer) = net(10, 3, 65).take_weights_from(source).unwrap();
        assert!(transfer.adapted.unwrap().contains("/ 3"));
        let got = rgb.forward(colour.clone());
        got.clone().into_data().assert_approx_eq::<f32>(
            &expected.into_data(),
            burn::tensor::Tolerance::absolute(1e-4),
        );
        let (back, _) = net(10, 1, 65).take_weights_from(rgb).unwrap();
        back.forward(grey)
            .into_data()
            .assert_approx_eq::<f32>(&got.into_data(), burn::tensor::Tolerance::absolute(1e-4));
    }

    #[test]
    fn another_architecture_is_refused_even_where_the_widths_agree() {
        // d2l's network at 227 px flattens 256x6x6 = 9216 values, as torchvision's does.
        let imagenet: AlexNet<Flex> = AlexNetConfig::new()
            .with_arch(Arch::Imagenet)
            .with_image_size(227)
            .init(&Default::default());
        let err = imagenet.take_weights_from(net(10, 1, 227)).unwrap_err();
        assert_eq!(
            err,
            TransferError::Arch {
                source: Arch::D2l,
                target: Arch::Imagenet
            }
        );
        assert!(err.to_string().contains("--arch d2l"), "{err}");
    }

    #[test]
    fn another_input_size_is_refused() {
        let err = net(10, 1, 128)
            .take_weights_from(net(10, 1, 65))
            .unwrap_err();
        assert_eq!(
            err,
            TransferError::FlattenWidth {
                source_width: 256,
                target_width: 1024
            }
        );
    }
}
