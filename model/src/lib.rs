//! The AlexNet of the d2l.ai chapter "Deep Convolutional Neural Networks (AlexNet)",
//! adapted to Fashion-MNIST (one input channel, ten classes), and torchvision's ImageNet
//! AlexNet ([`Arch`]), generic over any Burn backend.
//!
//! This crate depends on `burn` alone (plus, with its `flex` feature, the `alexnet-kernels`
//! crate's faster CPU kernels: [`has_fast_cpu_kernels`]), so inference-only users can build the
//! network and load a trained record without pulling in training code:
//!
//! ```
//! use alexnet_model::{AlexNet, AlexNetConfig};
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//!
//! type B = Flex;
//! let device = Default::default();
//! // A reduced input size keeps the example fast; d2l's protocol uses 224.
//! let config = AlexNetConfig::new().with_image_size(96);
//! let model: AlexNet<B> = config.try_init(&device).expect("96 is a valid size");
//! let logits = model.forward(Tensor::zeros([2, 1, 96, 96], &device));
//! assert_eq!(logits.dims(), [2, 10]);
//! ```
//!
//! To load a trained record written by `alexnet train` (the file `model.mpk` in the artifact
//! directory, with its `config.json` beside it):
//!
//! ```no_run
//! use alexnet_model::{AlexNet, AlexNetConfig};
//! use burn::backend::Flex;
//! use burn::module::Module;
//! use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
//!
//! type B = Flex;
//! let device = Default::default();
//! let config = AlexNetConfig::new(); // or read the "model" part of artifacts/config.json
//! let model: AlexNet<B> = config
//!     .try_init(&device)?
//!     .load_file("artifacts/model", &NamedMpkFileRecorder::<FullPrecisionSettings>::new(), &device)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use burn::config::Config;
use burn::module::{Initializer, Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

mod transfer;
pub use transfer::{Transfer, TransferError, adapt_channels};

/// The smallest input side for which every pooling window of d2l's network still fits (65
/// pixels); [`Arch::min_image_size`] gives it for either network.
pub const MIN_IMAGE_SIZE: usize = 65;

/// Which AlexNet: the layer table, and the names its weights have in PyTorch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, burn::serde::Serialize, burn::serde::Deserialize,
)]
#[serde(crate = "burn::serde", rename_all = "lowercase")]
pub enum Arch {
    /// d2l's chapter network (`nn.Sequential`): 96, 256, 384, 384 and 256 channels, the
    /// classifier on the last feature map as it is (5x5 at 224 px).
    #[default]
    D2l,
    /// torchvision's `alexnet()`, the ImageNet network: 64, 192, 384, 256 and 256 channels,
    /// an adaptive average pool to 6x6, dropout before each hidden linear layer.
    Imagenet,
}

impl Arch {
    /// Every architecture, in `--help` order.
    pub const ALL: [Arch; 2] = [Self::D2l, Self::Imagenet];

    /// The five convolutions of this network.
    fn convs(self) -> &'static [ConvLayer; 5] {
        match self {
            Self::D2l => &D2L_CONVS,
            Self::Imagenet => &IMAGENET_CONVS,
        }
    }

    /// The side of the adaptive average pool before the classifier, if the network has one.
    const fn adaptive_side(self) -> Option<usize> {
        match self {
            Self::D2l => None,
            Self::Imagenet => Some(6),
        }
    }

    /// The smallest input side for which every window of this network fits: 65 for d2l's, 63
    /// for torchvision's.
    pub fn min_image_size(self) -> usize {
        (1..=MIN_IMAGE_SIZE)
            .find(|&side| conv_output_sides(self, side).len() == self.convs().len())
            .expect("d2l's minimum fits both networks")
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::D2l => "d2l",
            Self::Imagenet => "imagenet",
        })
    }
}

/// One convolution of the network and whether a max-pool follows it.
struct ConvLayer {
    channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    pool_after: bool,
}

const fn conv(channels: usize, kernel: usize, stride: usize, padding: usize) -> ConvLayer {
    ConvLayer {
        channels,
        kernel,
        stride,
        padding,
        pool_after: false,
    }
}

const fn pooled(layer: ConvLayer) -> ConvLayer {
    ConvLayer {
        pool_after: true,
        ..layer
    }
}

/// How an image becomes the network's input: what a network's weights were trained with, so
/// that a run records it and every reader of images (training, `infer`, `eval`, `serve`)
/// applies the same.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, burn::serde::Serialize, burn::serde::Deserialize,
)]
#[serde(crate = "burn::serde", rename_all = "lowercase")]
pub enum Preprocess {
    /// d2l's: resized to the input side (a non-square image's shorter side, then a centre
    /// crop), pixels in [0, 1].
    #[default]
    D2l,
    /// torchvision's ImageNet evaluation transform: the shorter side resized to 256/224 of the
    /// input side (256 for 224), the centre kept, then each of red, green and blue normalised
    /// by ImageNet's mean and standard deviation.
    Imagenet,
}

impl Preprocess {
    /// Every way, in `--help` order.
    pub const ALL: [Preprocess; 2] = [Self::D2l, Self::Imagenet];

    /// ImageNet's per-channel mean and standard deviation (red, green, blue), as torchvision's
    /// `ImageClassification` preset normalises.
    pub const IMAGENET_MEAN_STD: [(f32, f32); 3] = [(0.485, 0.229), (0.456, 0.224), (0.406, 0.225)];

    /// The side the shorter side is resized to before the centre `side x side` is kept.
    pub fn resize_to(self, side: usize) -> usize {
        match self {
            Self::D2l => side,
            Self::Imagenet => side * 256 / 224,
        }
    }

    /// The mean and standard deviation channel `channel` of `channels` is normalised by, if any.
    pub fn mean_std(self, channel: usize, channels: usize) -> Option<(f32, f32)> {
        match self {
            Self::D2l => None,
            Self::Imagenet => (channels == 3).then(|| Self::IMAGENET_MEAN_STD[channel]),
        }
    }
}

impl Preprocess {
    /// How weights of `arch` with `in_channels` input channels expect images: ImageNet's
    /// transform for torchvision's colour network, d2l's otherwise.
    pub fn for_weights(arch: Arch, in_channels: usize) -> Self {
        match (arch, in_channels) {
            (Arch::Imagenet, 3) => Self::Imagenet,
            _ => Self::D2l,
        }
    }
}

impl std::fmt::Display for Preprocess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::D2l => "d2l",
            Self::Imagenet => "imagenet",
        })
    }
}

/// d2l's five convolutions; everything that depends on the feature-map sizes reads this table
/// (through [`Arch::convs`]).
const D2L_CONVS: [ConvLayer; 5] = [
    pooled(conv(96, 11, 4, 1)),
    pooled(conv(256, 5, 1, 2)),
    conv(384, 3, 1, 1),
    conv(384, 3, 1, 1),
    pooled(conv(256, 3, 1, 1)),
];

/// torchvision's `alexnet().features`.
const IMAGENET_CONVS: [ConvLayer; 5] = [
    pooled(conv(64, 11, 4, 2)),
    pooled(conv(192, 5, 1, 2)),
    conv(384, 3, 1, 1),
    conv(256, 3, 1, 1),
    pooled(conv(256, 3, 1, 1)),
];

/// The most memory the network's weights may take: 1 GiB, 268 M parameters (d2l's network
/// has 47 M at 224 px). The first linear layer grows with the square of the input side, so an
/// unbounded input size would ask for tens of gigabytes at once.
pub const MAX_WEIGHT_BYTES: u64 = 1 << 30;

/// The most memory one batch's activations may take by [`AlexNetConfig::batch_bytes`]: 64 GiB,
/// what the largest single GPUs hold; d2l's batch of 128 at 224 px takes about 1.4 GB.
pub const MAX_BATCH_BYTES: u64 = 64 << 30;

/// The max-pools' window and stride.
const POOL: (usize, usize) = (3, 2);

/// Channels of the last convolution in both networks, the width of the flattened feature map
/// per pixel.
const LAST_CONV_CHANNELS: usize = D2L_CONVS[4].channels;
const _: () = assert!(IMAGENET_CONVS[4].channels == LAST_CONV_CHANNELS);

/// Width of the two hidden fully connected layers.
const HIDDEN: usize = 4096;

/// The hyper-parameters of [`AlexNet`]; the defaults are the d2l chapter's.
#[derive(Config, Debug, PartialEq)]
pub struct AlexNetConfig {
    /// Which network: d2l's (the default) or torchvision's ImageNet one.
    #[config(default = "Arch::D2l")]
    pub arch: Arch,
    /// Number of output classes (logits).
    #[config(default = 10)]
    pub num_classes: usize,
    /// Channels of the input image (1 for Fashion-MNIST).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Side of the square input image, in pixels.
    #[config(default = 224)]
    pub image_size: usize,
    /// Drop probability of the two dropout layers.
    #[config(default = 0.5)]
    pub dropout: f64,
}

/// Why an [`AlexNetConfig`] cannot build a network.
#[derive(Debug, Clone, PartialEq)]
pub enum AlexNetConfigError {
    /// The input is too small for the three 3x3/2 max-pools.
    ImageTooSmall {
        /// The requested side.
        image_size: usize,
        /// The smallest side the network takes.
        smallest: usize,
    },
    /// Zero classes or zero input channels.
    ZeroDimension {
        /// Which field is zero.
        field: &'static str,
    },
    /// A dropout probability outside `[0, 1)`.
    InvalidDropout {
        /// The requested probability.
        dropout: f64,
    },
    /// The input is so large that the weights would be over [`MAX_WEIGHT_BYTES`].
    ImageTooLarge {
        /// The requested side.
        image_size: usize,
        /// The parameters it would take.
        parameters: u64,
        /// The largest side within the budget.
        largest: usize,
    },
    /// A batch whose activations would be over [`MAX_BATCH_BYTES`].
    BatchTooLarge {
        /// The requested batch.
        batch: usize,
        /// The input side.
        image_size: usize,
        /// The bytes it would take.
        bytes: u64,
        /// The largest batch within the budget.
        largest: usize,
    },
}

impl std::fmt::Display for AlexNetConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ImageTooSmall {
                image_size,
                smallest,
            } => write!(
                f,
                "image size {image_size} is too small for AlexNet: the input side must be at \
                 least {smallest} pixels (d2l uses 224)"
            ),
            Self::ZeroDimension { field } => write!(f, "{field} must be at least 1"),
            Self::InvalidDropout { dropout } => {
                write!(f, "dropout {dropout} must lie in [0, 1) (d2l uses 0.5)")
            }
            Self::ImageTooLarge {
                image_size,
                parameters,
                largest,
            } => write!(
                f,
                "image size {image_size} is too large: the network would have {} parameters \
                 ({:.1} GB of weights, over the {} GiB budget); the input side must be at most \
                 {largest} pixels (d2l uses 224)",
                millions(*parameters),
                *parameters as f64 * 4.0 / 1e9,
                MAX_WEIGHT_BYTES >> 30
            ),
            Self::BatchTooLarge {
                batch,
                image_size,
                bytes,
                largest,
            } => write!(
                f,
                "{batch} images of {image_size} px would take about {:.0} GB of activations, \
                 over the {} GiB budget; use at most {largest} (d2l uses 128)",
                *bytes as f64 / 1e9,
                MAX_BATCH_BYTES >> 30
            ),
        }
    }
}

impl std::error::Error for AlexNetConfigError {}

/// A parameter count in millions, or thousands of millions when that large.
fn millions(count: u64) -> String {
    match count {
        0..1_000_000_000 => format!("{:.0} M", count as f64 / 1e6),
        _ => format!("{:.1} G", count as f64 / 1e9),
    }
}

/// The largest value in `low..=high` for which `fits` holds, where it holds up to some value
/// and not beyond (`low` when none does).
fn largest_fitting(low: usize, high: usize, fits: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (low, high);
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        match fits(middle) {
            true => low = middle,
            false => high = middle - 1,
        }
    }
    low
}

/// Each convolution's output side and the side after its max-pool (if any) for `arch` at input
/// side `side`, while the windows fit; fewer than five entries mean the image is too small.
fn conv_output_sides(arch: Arch, side: usize) -> Vec<(usize, usize)> {
    let mut side = Some(side);
    arch.convs()
        .iter()
        .map_while(|layer| {
            let conv = window_out(side?, layer.kernel, layer.stride, layer.padding)?;
            let pooled = match layer.pool_after {
                true => window_out(conv, POOL.0, POOL.1, 0)?,
                false => conv,
            };
            side = Some(pooled);
            Some((conv, pooled))
        })
        .collect()
}

/// Output side of a convolution or pooling window along one axis (floor division).
fn window_out(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = input.checked_add(2 * padding)?;
    (padded >= kernel).then(|| (padded - kernel) / stride + 1)
}

impl AlexNetConfig {
    /// Checks every field; the error says what to change.
    pub fn validate(&self) -> Result<(), AlexNetConfigError> {
        if self.num_classes == 0 {
            return Err(AlexNetConfigError::ZeroDimension {
                field: "num_classes",
            });
        }
        if self.in_channels == 0 {
            return Err(AlexNetConfigError::ZeroDimension {
                field: "in_channels",
            });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(AlexNetConfigError::InvalidDropout {
                dropout: self.dropout,
            });
        }
        self.feature_map_side()?;
        self.check_weights()
    }

    /// Refuses an input side whose network would be over [`MAX_WEIGHT_BYTES`], naming the
    /// largest side that fits.
    fn check_weights(&self) -> Result<(), AlexNetConfigError> {
        let parameters = self.parameters()?;
        if parameters.saturating_mul(4) <= MAX_WEIGHT_BYTES {
            return Ok(());
        }
        let fits = |side| {
            let config = self.clone().with_image_size(side);
            config
                .parameters()
                .is_ok_and(|p| p.saturating_mul(4) <= MAX_WEIGHT_BYTES)
        };
        Err(AlexNetConfigError::ImageTooLarge {
            image_size: self.image_size,
            parameters,
            largest: largest_fitting(self.arch.min_image_size(), self.image_size, fits),
        })
    }

    /// Trainable parameters, from the layer table (d2l's: 46,764,746 at 224; torchvision's:
    /// 61,100,840 at any size), before any is made; `u64::MAX` when there would be more
    /// (counted wide, so no input size overflows it).
    pub fn parameters(&self) -> Result<u64, AlexNetConfigError> {
        let mut channels = self.in_channels as u128;
        let mut count = 0;
        for layer in self.arch.convs() {
            let (out, k) = (layer.channels as u128, layer.kernel as u128);
            count += out * (channels * k * k + 1);
            channels = out;
        }
        let side = self.feature_map_side()? as u128;
        let (hidden, flatten) = (HIDDEN as u128, LAST_CONV_CHANNELS as u128 * side * side);
        let linear = |inputs: u128, outputs: u128| outputs * (inputs + 1);
        let count = count
            + linear(flatten, hidden)
            + linear(hidden, hidden)
            + linear(hidden, self.num_classes as u128);
        Ok(u64::try_from(count).unwrap_or(u64::MAX))
    }

    /// Values one image's forward pass produces, layer after layer (the input included).
    fn activation_values(&self) -> Result<u64, AlexNetConfigError> {
        self.validate()?;
        let mut values = (self.in_channels * self.image_size * self.image_size) as u64;
        for (layer, (conv, pooled)) in self.arch.convs().iter().zip(self.conv_output_sides()) {
            // The convolution's output and its ReLU's, and the max-pool's.
            values += (layer.channels * conv * conv) as u64 * 2;
            if layer.pool_after {
                values += (layer.channels * pooled * pooled) as u64;
            }
        }
        if self.arch.adaptive_side().is_some() {
            // The adaptive pool's output, and the dropout torchvision applies to it.
            values += 2 * self.flatten_width()? as u64;
        }
        // fc1 and fc2 with their ReLU and dropout, fc3.
        Ok(values + 2 * 3 * HIDDEN as u64 + self.num_classes as u64)
    }

    /// An estimate of the memory a batch of `batch` images takes in activations: the forward
    /// pass, and for `training` as much again for what the backward pass keeps and computes.
    pub fn batch_bytes(&self, batch: usize, training: bool) -> Result<u64, AlexNetConfigError> {
        let passes = if training { 2 } else { 1 };
        Ok(self.activation_values()? * 4 * passes * batch as u64)
    }

    /// Refuses a batch over [`MAX_BATCH_BYTES`] by [`AlexNetConfig::batch_bytes`], naming the
    /// largest that fits.
    pub fn check_batch(&self, batch: usize, training: bool) -> Result<(), AlexNetConfigError> {
        let bytes = self.batch_bytes(batch, training)?;
        if bytes <= MAX_BATCH_BYTES {
            return Ok(());
        }
        let per_image = self.batch_bytes(1, training)?;
        Err(AlexNetConfigError::BatchTooLarge {
            batch,
            image_size: self.image_size,
            bytes,
            largest: (MAX_BATCH_BYTES / per_image) as usize,
        })
    }

    /// Side of the feature map the classifier flattens: after the third max-pool (5 at 224)
    /// in d2l's network, after the adaptive pool (6 at any size) in torchvision's.
    pub fn feature_map_side(&self) -> Result<usize, AlexNetConfigError> {
        let sides = self.conv_output_sides();
        let convs = self.arch.convs().len();
        if sides.len() < convs {
            return Err(AlexNetConfigError::ImageTooSmall {
                image_size: self.image_size,
                smallest: self.arch.min_image_size(),
            });
        }
        Ok(self.arch.adaptive_side().unwrap_or(sides[convs - 1].1))
    }

    /// Each convolution's output side and the side after its max-pool (if any).
    fn conv_output_sides(&self) -> Vec<(usize, usize)> {
        conv_output_sides(self.arch, self.image_size)
    }

    /// Width of the flattened features fed to the first linear layer (d2l's: 6400 at 224;
    /// torchvision's: 9216).
    pub fn flatten_width(&self) -> Result<usize, AlexNetConfigError> {
        let side = self.feature_map_side()?;
        Ok(LAST_CONV_CHANNELS * side * side)
    }

    /// Multiply-accumulates of one image's forward pass through the conv and linear layers
    /// (0.935 G at 224); FLOPs are twice this, a training step about three times the FLOPs.
    pub fn forward_macs(&self) -> Result<u64, AlexNetConfigError> {
        self.validate()?;
        let mut channels = self.in_channels;
        let mut macs = 0u64;
        for (layer, (side, _)) in self.arch.convs().iter().zip(self.conv_output_sides()) {
            macs += (layer.channels * side * side * channels * layer.kernel * layer.kernel) as u64;
            channels = layer.channels;
        }
        let flatten = self.flatten_width()?;
        macs += (flatten * HIDDEN + HIDDEN * HIDDEN + HIDDEN * self.num_classes) as u64;
        Ok(macs)
    }

    /// The network as its source defines it: d2l's for Fashion-MNIST (1 channel, 10 classes),
    /// or torchvision's for ImageNet (3 channels, 1,000 classes), at 224 px.
    pub fn for_arch(arch: Arch) -> Self {
        match arch {
            Arch::D2l => Self::new(),
            Arch::Imagenet => Self::new()
                .with_arch(arch)
                .with_in_channels(3)
                .with_num_classes(1000),
        }
    }

    /// Builds the network, or says why this configuration cannot.
    ///
    /// Conv and linear weights get Xavier-uniform init, as d2l's `train_ch6` does; biases keep
    /// PyTorch's default (uniform in ±1/sqrt(fan_in)), which is also Burn's default.
    pub fn try_init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<AlexNet<B>, AlexNetConfigError> {
        self.validate()?;
        let flatten = self.flatten_width()?;
        let mut channels_in = self.in_channels;
        let [conv1, conv2, conv3, conv4, conv5] = self.arch.convs().each_ref().map(|layer| {
            let (k, s, p) = (layer.kernel, layer.stride, layer.padding);
            let config = Conv2dConfig::new([channels_in, layer.channels], [k, k])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p));
            channels_in = layer.channels;
            xavier_conv(config, device)
        });
        let pool = || {
            MaxPool2dConfig::new([POOL.0, POOL.0])
                .with_strides([POOL.1, POOL.1])
                .init()
        };
        let dropout = || DropoutConfig::new(self.dropout).init();
        Ok(AlexNet {
            conv1,
            pool1: pool(),
            conv2,
            pool2: pool(),
            conv3,
            conv4,
            conv5,
            pool3: pool(),
            avgpool: self
                .arch
                .adaptive_side()
                .map(|side| AdaptiveAvgPool2dConfig::new([side, side]).init()),
            fc1: xavier_linear(LinearConfig::new(flatten, HIDDEN), device),
            dropout1: dropout(),
            fc2: xavier_linear(LinearConfig::new(HIDDEN, HIDDEN), device),
            dropout2: dropout(),
            fc3: xavier_linear(LinearConfig::new(HIDDEN, self.num_classes), device),
            relu: Relu::new(),
        })
    }

    /// Builds the network.
    ///
    /// # Panics
    /// If the configuration is invalid; call [`AlexNetConfig::try_init`] to get the error instead.
    pub fn init<B: Backend>(&self, device: &B::Device) -> AlexNet<B> {
        self.try_init(device).unwrap_or_else(|err| panic!("{err}"))
    }
}

const XAVIER: Initializer = Initializer::XavierUniform { gain: 1.0 };

fn xavier_conv<B: Backend>(config: Conv2dConfig, device: &B::Device) -> Conv2d<B> {
    let mut conv = config.init(device);
    let [out_ch, in_ch, kh, kw] = conv.weight.shape().dims();
    let (fan_in, fan_out) = (in_ch * kh * kw, out_ch * kh * kw);
    conv.weight = XAVIER.init_with([out_ch, in_ch, kh, kw], Some(fan_in), Some(fan_out), device);
    conv
}

fn xavier_linear<B: Backend>(config: LinearConfig, device: &B::Device) -> Linear<B> {
    let mut linear = config.init(device);
    let [d_in, d_out] = linear.weight.shape().dims();
    linear.weight = XAVIER.init_with([d_in, d_out], Some(d_in), Some(d_out), device);
    linear
}

/// AlexNet for `[batch, in_channels, image_size, image_size]` inputs, returning logits. Both
/// architectures have the same parameters by name (`conv1` … `fc3`); their shapes, and the
/// adaptive pool that only torchvision's network has, tell them apart ([`AlexNet::arch`]).
#[derive(Module, Debug)]
pub struct AlexNet<B: Backend> {
    conv1: Conv2d<B>,
    pool1: MaxPool2d,
    conv2: Conv2d<B>,
    pool2: MaxPool2d,
    conv3: Conv2d<B>,
    conv4: Conv2d<B>,
    conv5: Conv2d<B>,
    pool3: MaxPool2d,
    /// torchvision's `avgpool` (none in d2l's network). A record written before it existed
    /// reads as none, so d2l's records load unchanged.
    avgpool: Option<AdaptiveAvgPool2d>,
    fc1: Linear<B>,
    dropout1: Dropout,
    fc2: Linear<B>,
    dropout2: Dropout,
    fc3: Linear<B>,
    relu: Relu,
}

/// Collects parameter names and shapes while visiting a module, without initialising a
/// parameter Burn has not drawn yet: a network built only to be loaded (`infer`, `import`)
/// would otherwise draw all its random weights (most of a one-image `infer` process) just to
/// have its shapes read.
#[derive(Default)]
struct ShapeCollector {
    path: Vec<String>,
    shapes: Vec<(String, Vec<usize>)>,
}

impl<B: Backend> ModuleVisitor<B> for ShapeCollector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.shapes
            .push((self.path.join("."), param.lazy_shape().to_vec()));
    }
}

/// One row of [`AlexNet::layer_shapes`]: a layer's PyTorch-style name and its output shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerShape {
    /// `Conv2d`, `ReLU`, `MaxPool2d`, `Flatten`, `Linear` or `Dropout`.
    pub layer: &'static str,
    /// The output shape of that layer.
    pub shape: Vec<usize>,
}

/// One layer of [`AlexNet`], borrowed from the network, in the order d2l's
/// `for layer in net: X = layer(X)` visits them.
#[derive(Debug)]
pub enum Layer<'a, B: Backend> {
    /// A convolution.
    Conv2d(&'a Conv2d<B>),
    /// Rectified linear unit.
    ReLU(&'a Relu),
    /// 3x3 max-pooling with stride 2.
    MaxPool2d(&'a MaxPool2d),
    /// Average pooling to a fixed side (torchvision's network only).
    AdaptiveAvgPool2d(&'a AdaptiveAvgPool2d),
    /// Feature maps `[batch, c, h, w]` to vectors `[batch, c*h*w]`.
    Flatten,
    /// A fully connected layer.
    Linear(&'a Linear<B>),
    /// Dropout (active only on an autodiff backend).
    Dropout(&'a Dropout),
}

// By hand: a derive would ask for `B: Copy`.
impl<B: Backend> Clone for Layer<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for Layer<'_, B> {}

/// What flows between layers: feature maps before [`Layer::Flatten`], vectors after it.
#[derive(Debug, Clone)]
pub enum Activation<B: Backend> {
    /// `[batch, channels, height, width]`.
    Maps(Tensor<B, 4>),
    /// `[batch, features]`.
    Vectors(Tensor<B, 2>),
}

impl<B: Backend> Activation<B> {
    /// The tensor's shape.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Self::Maps(x) => x.dims().to_vec(),
            Self::Vectors(x) => x.dims().to_vec(),
        }
    }

    fn maps(self, layer: &str) -> Tensor<B, 4> {
        match self {
            Self::Maps(x) => x,
            Self::Vectors(_) => panic!("{layer} needs feature maps, got vectors"),
        }
    }

    fn vectors(self, layer: &str) -> Tensor<B, 2> {
        match self {
            Self::Vectors(x) => x,
            Self::Maps(_) => panic!("{layer} needs vectors, got feature maps"),
        }
    }
}

impl<B: Backend> Layer<'_, B> {
    /// PyTorch's class name for the layer, as in d2l's table.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Conv2d(_) => "Conv2d",
            Self::ReLU(_) => "ReLU",
            Self::MaxPool2d(_) => "MaxPool2d",
            Self::AdaptiveAvgPool2d(_) => "AdaptiveAvgPool2d",
            Self::Flatten => "Flatten",
            Self::Linear(_) => "Linear",
            Self::Dropout(_) => "Dropout",
        }
    }

    /// Applies the layer.
    ///
    /// # Panics
    /// If `x` is vectors for a layer that needs feature maps or the other way round; the layers
    /// of [`AlexNet::layers`] in their order never are.
    pub fn forward(&self, x: Activation<B>) -> Activation<B> {
        let name = self.name();
        match (self, x) {
            (Self::Conv2d(conv), x) => Activation::Maps(conv2d(conv, x.maps(name))),
            (Self::ReLU(layer), Activation::Maps(x)) => Activation::Maps(relu(layer, x)),
            (Self::ReLU(layer), Activation::Vectors(x)) => Activation::Vectors(relu(layer, x)),
            (Self::MaxPool2d(pool), x) => Activation::Maps(max_pool2d(pool, x.maps(name))),
            (Self::AdaptiveAvgPool2d(pool), x) => Activation::Maps(pool.forward(x.maps(name))),
            (Self::Flatten, x) => Activation::Vectors(x.maps(name).flatten(1, 3)),
            (Self::Linear(fc), x) => Activation::Vectors(linear(fc, x.vectors(name))),
            (Self::Dropout(dropout), Activation::Maps(x)) => Activation::Maps(dropout.forward(x)),
            (Self::Dropout(dropout), Activation::Vectors(x)) => {
                Activation::Vectors(dropout.forward(x))
            }
        }
    }
}

/// Whether convolutions, linear layers, ReLUs and max-poolings on backend `B` take this crate's CPU kernels
/// (`Flex` and `Autodiff<Flex>` with the `flex` feature) instead of Burn's stock layers.
pub fn has_fast_cpu_kernels<B: Backend>() -> bool {
    #[cfg(feature = "flex")]
    return alexnet_kernels::flex::applies_to::<B>();
    #[cfg(not(feature = "flex"))]
    false
}

/// A convolution through the fastest implementation this build has for backend `B`.
fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    let x = match alexnet_kernels::flex::conv2d(conv, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    #[cfg(feature = "cudnn")]
    let x = match alexnet_kernels::cudnn::conv2d(conv, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    conv.forward(x)
}

/// A linear layer through the fastest implementation this build has for backend `B`.
fn linear<B: Backend>(fc: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "flex")]
    let x = match alexnet_kernels::flex::linear(fc, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    fc.forward(x)
}

/// A ReLU through the fastest implementation this build has for backend `B`.
fn relu<B: Backend, const D: usize>(relu: &Relu, x: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(feature = "flex")]
    let x = match alexnet_kernels::flex::relu(x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    relu.forward(x)
}

/// A max-pooling through the fastest implementation this build has for backend `B`.
fn max_pool2d<B: Backend>(pool: &MaxPool2d, x: Tensor<B, 4>) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    let x = match alexnet_kernels::flex::max_pool2d(pool, x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    pool.forward(x)
}

impl<B: Backend> AlexNet<B> {
    /// Logits `[batch, num_classes]` for images `[batch, in_channels, side, side]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let logits = self
            .layers()
            .iter()
            .fold(Activation::Maps(images), |x, layer| layer.forward(x));
        logits.vectors("the output")
    }

    /// Which network this is.
    pub fn arch(&self) -> Arch {
        match self.avgpool {
            Some(_) => Arch::Imagenet,
            None => Arch::D2l,
        }
    }

    /// The layers in order: d2l's 21 as its `nn.Sequential` lists them, or torchvision's 22
    /// (`features`, `avgpool`, the flatten of its `forward`, `classifier`).
    pub fn layers(&self) -> Vec<Layer<'_, B>> {
        use Layer::{Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU};
        let relu = ReLU(&self.relu);
        let features = [
            Conv2d(&self.conv1),
            relu,
            MaxPool2d(&self.pool1),
            Conv2d(&self.conv2),
            relu,
            MaxPool2d(&self.pool2),
            Conv2d(&self.conv3),
            relu,
            Conv2d(&self.conv4),
            relu,
            Conv2d(&self.conv5),
            relu,
            MaxPool2d(&self.pool3),
        ];
        let (fc1, fc2, fc3) = (Linear(&self.fc1), Linear(&self.fc2), Linear(&self.fc3));
        let (dropout1, dropout2) = (Dropout(&self.dropout1), Dropout(&self.dropout2));
        let rest = match &self.avgpool {
            None => vec![Flatten, fc1, relu, dropout1, fc2, relu, dropout2, fc3],
            Some(pool) => vec![
                Layer::AdaptiveAvgPool2d(pool),
                Flatten,
                dropout1,
                fc1,
                relu,
                dropout2,
                fc2,
                relu,
                fc3,
            ],
        };
        features.into_iter().chain(rest).collect()
    }

    /// Runs `images` through the network and lists every layer's output shape, in the form of
    /// d2l's layer table (a row per layer of [`AlexNet::layers`]).
    pub fn layer_shapes(&self, images: Tensor<B, 4>) -> Vec<LayerShape> {
        let mut x = Activation::Maps(images);
        self.layers()
            .iter()
            .map(|layer| {
                x = layer.forward(x.clone());
                LayerShape {
                    layer: layer.name(),
                    shape: x.dims(),
                }
            })
            .collect()
    }

    /// Total number of trainable scalars (d2l's: 46,764,746 at 224; torchvision's: 61,100,840).
    pub fn parameter_count(&self) -> usize {
        self.num_params()
    }

    /// Every parameter as (`layer.param`, shape), in declaration order: `conv1.weight`
    /// `[96, 1, 11, 11]`, … Two networks can exchange records only if these agree.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut collector = ShapeCollector::default();
        self.visit(&mut collector);
        collector.shapes
    }

    /// The first parameter whose shape differs from `expected`'s, as (name, found, expected).
    pub fn shape_mismatch(&self, expected: &Self) -> Option<(String, Vec<usize>, Vec<usize>)> {
        let found = self.parameter_shapes();
        let wanted = expected.parameter_shapes();
        if found.len() != wanted.len() {
            let count = |v: &[(String, Vec<usize>)]| vec![v.len()];
            return Some(("parameter count".into(), count(&found), count(&wanted)));
        }
        found
            .into_iter()
            .zip(wanted)
            .find(|(f, w)| f.1 != w.1)
            .map(|((name, f), (_, w))| (name, f, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn flatten_width_follows_image_size() {
        let width = |n| AlexNetConfig::new().with_image_size(n).flatten_width();
        assert_eq!(width(224), Ok(6400));
        // Hand-computed with floor((n + 2p - k) / s) + 1 per layer, as PyTorch does.
        assert_eq!(width(227), Ok(256 * 6 * 6));
        assert_eq!(width(96), Ok(256));
        assert_eq!(width(128), Ok(256 * 2 * 2));
        assert_eq!(width(160), Ok(256 * 3 * 3));
        assert_eq!(width(65), Ok(256));
        assert_eq!(width(512), Ok(256 * 14 * 14));
    }

    #[test]
    fn forward_cost_matches_the_reference_count() {
        // PyTorch counts 1.876 GFLOP per image at 224 (torch.utils.flop_counter on d2l's network).
        let macs = AlexNetConfig::new().forward_macs().unwrap();
        // conv1..5: 96*54²*1*11², 256*26²*96*5², 384*12²*256*3², 384*12²*384*3², 256*12²*384*3²
        let convs = 33_872_256 + 415_334_400 + 127_401_984 + 191_102_976 + 127_401_984;
        assert_eq!(macs, convs + 6400 * 4096 + 4096 * 4096 + 4096 * 10);
        assert!((2.0 * macs as f64 / 1e9 - 1.87).abs() < 0.01, "{macs}");
    }

    #[test]
    fn sizes_whose_weights_are_over_the_budget_are_refused_with_the_largest_that_fits() {
        let device = Default::default();
        let config = AlexNetConfig::new();
        let net: AlexNet<Flex> = config.init(&device);
        assert_eq!(config.parameters(), Ok(net.parameter_count() as u64));
        for huge in [2000, 100_000, usize::MAX / 8] {
            let err = config.clone().with_image_size(huge).validate().unwrap_err();
            let AlexNetConfigError::ImageTooLarge { largest, .. } = err else {
                panic!("{err}");
            };
            let fits = |side| config.clone().with_image_size(side).parameters().unwrap() * 4;
            assert!(fits(largest) <= MAX_WEIGHT_BYTES && fits(largest + 1) > MAX_WEIGHT_BYTES);
            assert!(
                err.to_string()
                    .contains(&format!("at most {largest} pixels")),
                "{err}"
            );
        }
        assert!(config.clone().with_image_size(512).validate().is_ok());
    }

    #[test]
    fn batches_over_the_activation_budget_are_refused() {
        let config = AlexNetConfig::new();
        assert!(config.check_batch(128, true).is_ok());
        let bytes = config.batch_bytes(128, true).unwrap() as f64;
        assert!((1.0e9..2.0e9).contains(&bytes), "{bytes}");
        let err = config.check_batch(1_000_000, true).unwrap_err();
        let AlexNetConfigError::BatchTooLarge { largest, .. } = err else {
            panic!("{err}");
        };
        assert!(config.check_batch(largest, true).is_ok());
        assert!(config.check_batch(largest + 1, true).is_err());
        let small = config.clone().with_image_size(96);
        assert!(
            small.check_batch(largest * 4, false).is_ok(),
            "smaller, and no backward pass"
        );
    }

    #[test]
    fn sizes_below_the_minimum_are_rejected() {
        for n in [0, 1, 28, 33, 64] {
            let err = AlexNetConfig::new()
                .with_image_size(n)
                .validate()
                .unwrap_err();
            let smallest = 65;
            assert_eq!(
                err,
                AlexNetConfigError::ImageTooSmall {
                    image_size: n,
                    smallest
                }
            );
            assert!(err.to_string().contains("at least 65"), "{err}");
        }
        let imagenet = AlexNetConfig::new().with_arch(Arch::Imagenet);
        assert_eq!(Arch::Imagenet.min_image_size(), 63);
        assert!(imagenet.clone().with_image_size(63).validate().is_ok());
        let err = imagenet.with_image_size(62).validate().unwrap_err();
        assert!(err.to_string().contains("at least 63"), "{err}");
    }

    /// torchvision's figures: 61,100,840 parameters, 9216 features into the classifier at any
    /// input side, and its module's output shapes at 224.
    #[test]
    fn the_imagenet_network_is_torchvisions() {
        let config = AlexNetConfig::new()
            .with_arch(Arch::Imagenet)
            .with_in_channels(3)
            .with_num_classes(1000);
        assert_eq!(config.parameters(), Ok(61_100_840));
        for side in [63, 96, 224, 300] {
            let config = config.clone().with_image_size(side);
            assert_eq!(config.flatten_width(), Ok(9216), "{side}");
        }
        let device = Default::default();
        let net: AlexNet<Flex> = config.init(&device);
        assert_eq!(net.arch(), Arch::Imagenet);
        assert_eq!(net.parameter_count(), 61_100_840);
        let rows = net.layer_shapes(Tensor::zeros([1, 3, 224, 224], &device));
        let table: Vec<(&str, Vec<usize>)> =
            rows.iter().map(|r| (r.layer, r.shape.clone())).collect();
        let maps = |c, s| vec![1, c, s, s];
        let expected = [
            ("Conv2d", maps(64, 55)),
            ("ReLU", maps(64, 55)),
            ("MaxPool2d", maps(64, 27)),
            ("Conv2d", maps(192, 27)),
            ("ReLU", maps(192, 27)),
            ("MaxPool2d", maps(192, 13)),
            ("Conv2d", maps(384, 13)),
            ("ReLU", maps(384, 13)),
            ("Conv2d", maps(256, 13)),
            ("ReLU", maps(256, 13)),
            ("Conv2d", maps(256, 13)),
            ("ReLU", maps(256, 13)),
            ("MaxPool2d", maps(256, 6)),
            ("AdaptiveAvgPool2d", maps(256, 6)),
            ("Flatten", vec![1, 9216]),
            ("Dropout", vec![1, 9216]),
            ("Linear", vec![1, 4096]),
            ("ReLU", vec![1, 4096]),
            ("Dropout", vec![1, 4096]),
            ("Linear", vec![1, 4096]),
            ("ReLU", vec![1, 4096]),
            ("Linear", vec![1, 1000]),
        ];
        assert_eq!(table, expected.to_vec());
        let d2l: AlexNet<Flex> = AlexNetConfig::new().with_image_size(65).init(&device);
        assert_eq!((d2l.arch(), d2l.layers().len()), (Arch::D2l, 21));
    }

    #[test]
    fn the_imagenet_network_pools_small_maps_up_to_six() {
        let device = Default::default();
        let config = AlexNetConfig::new()
            .with_arch(Arch::Imagenet)
            .with_image_size(96)
            .with_num_classes(5);
        let net: AlexNet<Flex> = config.init(&device);
        // At 96 px the last max-pool leaves 2x2 maps; the adaptive pool repeats them to 6x6.
        let rows = net.layer_shapes(Tensor::ones([2, 1, 96, 96], &device));
        assert_eq!(rows[12].shape, vec![2, 256, 2, 2]);
        assert_eq!(rows[13].shape, vec![2, 256, 6, 6]);
        let logits = net.forward(Tensor::ones([2, 1, 96, 96], &device));
        assert_eq!(logits.dims(), [2, 5]);
    }

    #[test]
    fn degenerate_fields_are_rejected() {
        let config = AlexNetConfig::new();
        assert!(config.clone().with_num_classes(0).validate().is_err());
        assert!(config.clone().with_in_channels(0).validate().is_err());
        assert!(config.clone().with_dropout(1.0).validate().is_err());
        assert!(config.clone().with_dropout(f64::NAN).validate().is_err());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn small_network_maps_images_to_logits() {
        let device = Default::default();
        let config = AlexNetConfig::new().with_image_size(65).with_num_classes(3);
        let model: AlexNet<Flex> = config.try_init(&device).unwrap();
        let logits = model.forward(Tensor::ones([2, 1, 65, 65], &device));
        assert_eq!(logits.dims(), [2, 3]);
        let values: Vec<f32> = logits.into_data().to_vec().unwrap();
        assert!(values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn reading_shapes_draws_no_weights() {
        struct Drawn(usize);
        impl ModuleVisitor<Flex> for Drawn {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Flex, D>>) {
                self.0 += param.is_initialized() as usize;
            }
        }
        let net: AlexNet<Flex> = AlexNetConfig::new().init(&Default::default());
        assert_eq!(net.parameter_shapes().len(), 16);
        let mut drawn = Drawn(0);
        net.visit(&mut drawn);
        assert_eq!(drawn.0, 0, "parameters drawn to read their shapes");
    }

    #[test]
    fn shape_mismatches_name_the_parameter() {
        let device = Default::default();
        let small: AlexNet<Flex> = AlexNetConfig::new().with_image_size(65).init(&device);
        let same: AlexNet<Flex> = AlexNetConfig::new().with_image_size(96).init(&device);
        let wider: AlexNet<Flex> = AlexNetConfig::new().with_image_size(128).init(&device);
        let five: AlexNet<Flex> = AlexNetConfig::new()
            .with_image_size(65)
            .with_num_classes(5)
            .init(&device);
        let shapes = small.parameter_shapes();
        assert_eq!(shapes.len(), 16);
        assert_eq!(shapes[0].1, vec![96, 1, 11, 11]);
        assert!(shapes[0].0.contains("conv1"), "{:?}", shapes[0]);
        assert_eq!(small.shape_mismatch(&same), None);
        let (name, found, expected) = small.shape_mismatch(&wider).unwrap();
        assert!(name.contains("fc1"), "{name}");
        assert_eq!((found, expected), (vec![256, 4096], vec![1024, 4096]));
        assert!(five.shape_mismatch(&small).unwrap().0.contains("fc3"));
    }

    #[test]
    fn weights_are_xavier_uniform_and_biases_default() {
        let device = Default::default();
        let model: AlexNet<Flex> = AlexNetConfig::new().with_image_size(65).init(&device);
        let max_abs = |t: Tensor<Flex, 1>| t.abs().max().into_scalar();
        // conv1: fan_in 121, fan_out 96*121 -> Xavier bound sqrt(6 / (121 + 11616)).
        let w = model.conv1.weight.val().flatten::<1>(0, 3);
        let bound = (6.0f32 / (121.0 + 11616.0)).sqrt();
        let observed = max_abs(w);
        assert!(
            observed <= bound && observed > 0.9 * bound,
            "{observed} vs {bound}"
        );
        // Biases: uniform in ±1/sqrt(fan_in) = ±1/11.
        let b = max_abs(model.conv1.bias.as_ref().unwrap().val());
        assert!(b <= 1.0 / 11.0 && b > 0.05, "{b}");
    }
}
