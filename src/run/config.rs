//! The full configuration of a run (model + protocol), saved as `config.json`, and its checks.

use std::path::{Path, PathBuf};

use alexnet_model::{AlexNetConfig, Preprocess};
use burn::config::Config;

/// The most data-loading threads a run may ask for (each holds a batch in memory).
pub const MAX_WORKERS: usize = 64;

/// Hyper-parameters of one training run; the defaults are d2l's AlexNet protocol.
#[derive(Config, Debug, PartialEq)]
pub struct TrainingConfig {
    /// The network (its `image_size` is the `--resize` of the data).
    pub model: AlexNetConfig,
    /// Passes over the training set.
    #[config(default = 10)]
    pub epochs: usize,
    /// Images per SGD step.
    #[config(default = 128)]
    pub batch_size: usize,
    /// SGD learning rate (no momentum, no weight decay).
    #[config(default = 0.01)]
    pub lr: f64,
    /// Use only the first N training images.
    #[config(default = "None")]
    pub limit_train: Option<usize>,
    /// Use only the first N test images.
    #[config(default = "None")]
    pub limit_test: Option<usize>,
    /// Seed of weight init, dropout and shuffling.
    #[config(default = 0)]
    pub seed: u64,
    /// Data-loading threads; 1 overlaps loading with compute and keeps batch order fixed.
    #[config(default = 1)]
    pub num_workers: usize,
    /// The optimizer and learning-rate schedule around `lr`; d2l's plain SGD by default.
    #[config(default = "OptimizerConfig::new()")]
    pub optimizer: OptimizerConfig,
    /// Label smoothing of the cross-entropy (as PyTorch's `label_smoothing`); d2l uses none.
    #[config(default = 0.0)]
    pub label_smoothing: f64,
    /// Where the images come from: Fashion-MNIST (d2l's) or a folder, and its classes.
    #[config(default = "DataConfig::new()")]
    pub data: DataConfig,
    /// The weights the run starts from: d2l's fresh Xavier init, or another network's.
    #[config(default = "InitConfig::new()")]
    pub init: InitConfig,
    /// Stop when the validation loss has not improved for this many epochs; `None` trains
    /// every epoch (d2l).
    #[config(default = "None")]
    pub early_stop_patience: Option<usize>,
}

/// Where a run's weights start (fine-tuning). By default a fresh Xavier init, as d2l's.
#[derive(Config, Debug, PartialEq)]
pub struct InitConfig {
    /// A run directory, or a PyTorch state dict / safetensors file of d2l's network.
    #[config(default = "None")]
    pub from: Option<PathBuf>,
    /// The record of a run directory to start from: `final`, `best`, `last` or an epoch.
    #[config(default = "None")]
    pub checkpoint: Option<String>,
    /// Keep the five convolutions as they start: only the linear layers train.
    #[config(default = false)]
    pub freeze_features: bool,
    /// What was loaded, adapted and re-initialised, and from which record (written by the run).
    #[config(default = "None")]
    pub loaded: Option<String>,
}

/// Fashion-MNIST's ten classes, in label order.
pub fn fashion_mnist_classes() -> Vec<String> {
    [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
    .map(String::from)
    .to_vec()
}

/// ImageNet-1k's 1,000 classes in label order, as torchvision names them (its
/// `_IMAGENET_CATEGORIES`, which the ImageNet weights' metadata carries).
pub fn imagenet_classes() -> Vec<String> {
    include_str!("imagenet_classes.txt")
        .lines()
        .map(String::from)
        .collect()
}

impl DataConfig {
    /// Whether the network reads Fashion-MNIST: no folder, and Fashion-MNIST's classes (a
    /// network imported from another folder run has neither).
    pub fn reads_fashion_mnist(&self) -> bool {
        self.images.is_none() && self.classes == fashion_mnist_classes()
    }
}

/// The images of a run. With the defaults, Fashion-MNIST's IDX files, as d2l trains on; with
/// `images`, a folder of labelled images, whose scan fills `classes` (and the network's output
/// and input sizes) when the run starts.
#[derive(Config, Debug, PartialEq)]
pub struct DataConfig {
    /// A folder of labelled images (one subfolder per class, or `train/` and `val/` with one
    /// per class each); `None` for Fashion-MNIST.
    #[config(default = "None")]
    pub images: Option<PathBuf>,
    /// Class names in label order: Fashion-MNIST's, or the folder's subfolders, sorted.
    #[config(default = "fashion_mnist_classes()")]
    pub classes: Vec<String>,
    /// The fraction of each class held out for validation, for a folder without `train/` and
    /// `val/`.
    #[config(default = 0.1)]
    pub val_split: f64,
    /// Leave images that cannot be read out of the run (and report them) instead of refusing
    /// the folder.
    #[config(default = false)]
    pub skip_bad_images: bool,
    /// With `skip_bad_images`, the largest fraction of an epoch's images that may fail to read
    /// while training (files vanishing or changing under the run) before the run stops.
    #[config(default = 0.01)]
    pub max_bad_fraction: f64,
    /// Random changes to the training images (none by default, as d2l).
    #[config(default = "AugmentConfig::new()")]
    pub augment: AugmentConfig,
    /// The seed of the batch order and the augmentation draws; `None` is the run's `seed`.
    #[config(default = "None")]
    pub seed: Option<u64>,
    /// How an image becomes the network's input: d2l's, or torchvision's ImageNet transform
    /// (which ImageNet weights expect).
    #[config(default = "Preprocess::D2l")]
    pub preprocess: Preprocess,
}

impl TrainingConfig {
    /// The seed of the batch order and the augmentation draws.
    pub fn data_seed(&self) -> u64 {
        self.data.seed.unwrap_or(self.seed)
    }
}

/// Random changes to each training image, drawn from (seed, epoch, image index) so that a
/// resumed run sees the images an uninterrupted one would; never applied to validation,
/// `eval` or `infer`. All off by default.
#[derive(Config, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Mirror left-right with probability 1/2.
    #[config(default = false)]
    pub hflip: bool,
    /// torchvision's `RandomResizedCrop`: a random part of the image (its area a fraction
    /// within `crop_scale`, aspect ratio within 3/4..4/3) stretched to the input size.
    #[config(default = false)]
    pub crop: bool,
    /// The range of the area fraction of `crop`.
    #[config(default = "[0.08, 1.0]")]
    pub crop_scale: [f64; 2],
    /// Pad the network's input by this many black pixels on each side and crop it back at a
    /// random place (the CIFAR recipe); 0 is off.
    #[config(default = 0)]
    pub pad_crop: usize,
    /// Decode JPEG training images at 1/2, 1/4 or 1/8 of their size when that still covers the
    /// input (the reduced IDCT of Pillow's `draft`): much faster for large photos, and close
    /// to, not equal to, the full decode. Never used for validation, `eval`, `infer` or `serve`.
    #[config(default = false)]
    pub jpeg_draft: bool,
}

impl AugmentConfig {
    /// Whether any augmentation is on.
    pub fn any(&self) -> bool {
        self.hflip || self.crop || self.pad_crop > 0
    }

    /// The `--augment` list: `hflip,crop`, or `none`.
    pub fn names(&self) -> String {
        let names: Vec<&str> = [(self.hflip, "hflip"), (self.crop, "crop")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        match names.is_empty() {
            true => "none".into(),
            false => names.join(","),
        }
    }
}

/// How the learning rate moves over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr` throughout (d2l).
    Constant,
    /// `lr` times `lr_gamma` every `lr_step_epochs` epochs.
    Step,
    /// Cosine annealing from `lr` to 0 over the run.
    Cosine,
}

impl LrSchedule {
    /// Every schedule.
    pub const ALL: [LrSchedule; 3] = [Self::Constant, Self::Step, Self::Cosine];
}

impl OptimizerKind {
    /// Every optimizer.
    pub const ALL: [OptimizerKind; 3] = [Self::Sgd, Self::Adam, Self::Adamw];
}

impl std::fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Constant => "constant",
            Self::Step => "step",
            Self::Cosine => "cosine",
        })
    }
}

/// The optimizer algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Stochastic gradient descent (d2l), with optional momentum.
    Sgd,
    /// Adam; `weight_decay` is an L2 penalty added to the gradient.
    Adam,
    /// AdamW; `weight_decay` is decoupled (the weights shrink by `lr * weight_decay`).
    Adamw,
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sgd => "sgd",
            Self::Adam => "adam",
            Self::Adamw => "adamw",
        })
    }
}

/// The optimizer beyond the learning rate, and the learning-rate schedule; the defaults are
/// d2l's plain SGD at a constant rate.
#[derive(Config, Debug, PartialEq)]
pub struct OptimizerConfig {
    /// The algorithm.
    #[config(default = "OptimizerKind::Sgd")]
    pub kind: OptimizerKind,
    /// SGD momentum (PyTorch's, dampening 0); 0 is plain SGD.
    #[config(default = 0.0)]
    pub momentum: f64,
    /// Nesterov momentum.
    #[config(default = false)]
    pub nesterov: bool,
    /// L2 penalty added to the gradients (PyTorch's `weight_decay`).
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// The schedule of the learning rate.
    #[config(default = "LrSchedule::Constant")]
    pub lr_schedule: LrSchedule,
    /// Epochs between two decays of the step schedule.
    #[config(default = "None")]
    pub lr_step_epochs: Option<usize>,
    /// The step schedule's decay factor.
    #[config(default = 0.1)]
    pub lr_gamma: f64,
    /// Epochs over which the rate climbs linearly to its scheduled value.
    #[config(default = 0)]
    pub warmup_epochs: usize,
    /// Largest L2 norm of each parameter's gradient (Burn clips per tensor, where PyTorch's
    /// `clip_grad_norm_` clips the norm of all gradients together).
    #[config(default = "None")]
    pub clip_grad_norm: Option<f64>,
    /// Adam's and AdamW's decay of the first moment.
    #[config(default = 0.9)]
    pub beta1: f64,
    /// Adam's and AdamW's decay of the second moment.
    #[config(default = 0.999)]
    pub beta2: f64,
    /// Adam's and AdamW's epsilon.
    #[config(default = 1e-8)]
    pub eps: f64,
    /// The output layer's learning rate is `lr` times this (a parameter group of its own, as
    /// d2l's fine-tuning gives a new head 10x).
    #[config(default = 1.0)]
    pub head_lr_mult: f64,
}

/// A configuration file with a field this crate does not know (a typo, or another version's).
#[derive(Debug, thiserror::Error)]
#[error("{} has an unknown field '{field}'", file.display())]
pub struct UnknownField {
    /// The file.
    pub file: std::path::PathBuf,
    /// The field's dotted path.
    pub field: String,
}

/// A file's JSON, or one line saying why there is none.
fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let file = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the config {file}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{file} is not JSON: {e}"))
}

/// Writes `value`'s fields over `base`'s, recursing into objects present in both.
fn merge(base: &mut serde_json::Value, value: serde_json::Value) {
    match (base, value) {
        (serde_json::Value::Object(base), serde_json::Value::Object(value)) => {
            for (key, v) in value {
                match base.get_mut(&key) {
                    Some(b) => merge(b, v),
                    None => {
                        base.insert(key, v);
                    }
                }
            }
        }
        (base, value) => *base = value,
    }
}

/// The first key of `value` (dotted path) that `known` does not have.
fn unknown_field(
    value: &serde_json::Value,
    known: &serde_json::Value,
    prefix: &str,
) -> Option<String> {
    let (Some(value), Some(known)) = (value.as_object(), known.as_object()) else {
        return None;
    };
    value.iter().find_map(|(key, v)| {
        let path = format!("{prefix}{key}");
        match known.get(key) {
            None => Some(path),
            Some(k) => unknown_field(v, k, &format!("{path}.")),
        }
    })
}

impl TrainingConfig {
    /// Reads a configuration written by a run or by hand (`alexnet train --config FILE`): a
    /// field this crate does not know, or one of the wrong type, is an error naming it.
    pub fn from_file_strict(path: &Path) -> anyhow::Result<Self> {
        let value = read_json(path)?;
        let known = serde_json::to_value(Self::d2l(224)).expect("configs serialise");
        if let Some(field) = unknown_field(&value, &known, "") {
            return Err(UnknownField {
                file: path.to_path_buf(),
                field,
            }
            .into());
        }
        Self::from_value(path, value)
    }

    /// Reads a run's `config.json`; fields it lacks (a run written before they existed) take
    /// d2l's values.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let value = read_json(path)?;
        // Every run has written its model; without it this is some other JSON file.
        if value.get("model").is_none() {
            anyhow::bail!("{} has no model field", path.display());
        }
        Self::from_value(path, value)
    }

    /// `value`'s fields over d2l's protocol. Burn's `Config` derive gives its defaults to
    /// `new()` only, not to deserialisation, so the defaults are merged in here.
    fn from_value(path: &Path, value: serde_json::Value) -> anyhow::Result<Self> {
        let mut merged = serde_json::to_value(Self::d2l(224)).expect("configs serialise");
        merge(&mut merged, value);
        serde_path_to_error::deserialize(merged)
            .map_err(|e| anyhow::anyhow!("{}: field '{}' {}", path.display(), e.path(), e.inner()))
    }

    /// The d2l protocol at the given input size.
    pub fn d2l(resize: usize) -> Self {
        Self::new(AlexNetConfig::new().with_image_size(resize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_has_a_thousand_distinct_classes_in_torchvisions_order() {
        let classes = imagenet_classes();
        assert_eq!(classes.len(), 1000);
        let distinct: std::collections::BTreeSet<&String> = classes.iter().collect();
        assert_eq!(distinct.len(), 1000);
        assert_eq!(
            (classes[0].as_str(), classes[999].as_str()),
            ("tench", "toilet tissue")
        );
        assert_eq!(classes[207], "golden retriever");
    }

    #[test]
    fn defaults_are_the_d2l_protocol() {
        let c = TrainingConfig::d2l(224);
        assert_eq!((c.epochs, c.batch_size, c.lr), (10, 128, 0.01));
        assert_eq!(c.model.image_size, 224);
        assert_eq!(c.model.dropout, 0.5);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn config_files_name_unknown_and_ill_typed_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            TrainingConfig::from_file_strict(&path).map_err(|e| e.to_string())
        };
        let good = serde_json::to_string(&TrainingConfig::d2l(96).with_lr(0.1)).unwrap();
        assert_eq!(load(&good).unwrap(), TrainingConfig::d2l(96).with_lr(0.1));
        let err = load(r#"{"model": {"image_size": 96}, "momentun": 0.9}"#).unwrap_err();
        assert!(err.contains("unknown field 'momentun'"), "{err}");
        let err = load(r#"{"model": {"image_sise": 96}}"#).unwrap_err();
        assert!(err.contains("'model.image_sise'"), "{err}");
        let err = load(r#"{"model": {}, "optimizer": {"momentum": "high"}}"#).unwrap_err();
        assert!(
            err.contains("field 'optimizer.momentum' invalid type"),
            "{err}"
        );
        let err = load(r#"{"model": {}, "optimizer": {"lr_schedule": "linear"}}"#).unwrap_err();
        assert!(
            err.contains("optimizer.lr_schedule") && err.contains("cosine"),
            "{err}"
        );
        assert!(load("{").unwrap_err().contains("is not JSON"));
    }

    #[test]
    fn configs_without_the_optimizer_fields_load_as_d2l() {
        // config.json of runs written before these fields existed.
        let old = r#"{"model":{"num_classes":10,"in_channels":1,"image_size":96,"dropout":0.5},
            "epochs":2,"batch_size":32,"lr":0.1,"limit_train":null,"limit_test":null,"seed":0,
            "num_workers":1}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, old).unwrap();
        let config = TrainingConfig::from_file(&path).unwrap();
        assert_eq!(config.optimizer, OptimizerConfig::new());
        assert_eq!(
            (config.epochs, config.lr, config.model.image_size),
            (2, 0.1, 96)
        );
        assert_eq!(config.label_smoothing, 0.0);
    }

    #[test]
    fn round_trips_through_json() {
        let c = TrainingConfig::d2l(96)
            .with_limit_train(Some(500))
            .with_seed(7)
            .with_label_smoothing(0.1)
            .with_optimizer(
                OptimizerConfig::new()
                    .with_momentum(0.9)
                    .with_lr_schedule(LrSchedule::Cosine)
                    .with_clip_grad_norm(Some(1.0)),
            );
        let json = serde_json::to_string(&c).unwrap();
        let back: TrainingConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
