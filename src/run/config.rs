//! The full configuration of a run (model + protocol), saved as `config.json`, and its checks.

use std::path::{Path, PathBuf};

use alexnet_model::{AlexNetConfig, AlexNetConfigError};
use burn::config::Config;

use super::settings::{Setting, SettingNames, field_names};

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

/// A training setting that cannot work. [`ConfigError::describe`] names the settings involved as
/// the caller spells them (the command line: by flag); `Display` names them by field.
#[derive(Debug, PartialEq)]
pub enum ConfigError {
    /// The network cannot be built at this image size.
    Model(AlexNetConfigError),
    /// A count that must be positive is zero.
    Zero(Setting),
    /// A limit of 0 images leaves its split empty.
    EmptySplit(Setting),
    /// A learning rate that SGD cannot use.
    LearningRate(f64),
    /// `data.classes` and the network's outputs disagree (a hand-edited config).
    ClassCount {
        /// Class names.
        names: usize,
        /// `model.num_classes`.
        outputs: usize,
    },
    /// A value out of its range; `fix` says what would work, `{}` in it standing for `needs`.
    OutOfRange {
        /// The setting.
        setting: Setting,
        /// The value given.
        value: String,
        /// What would work.
        fix: &'static str,
        /// The other setting `fix` names, if any.
        needs: Option<Setting>,
    },
}

impl ConfigError {
    /// The setting to change.
    pub fn setting(&self) -> Setting {
        match self {
            Self::Model(AlexNetConfigError::BatchTooLarge { .. }) => Setting::BatchSize,
            Self::Model(_) => Setting::ImageSize,
            Self::Zero(s) | Self::EmptySplit(s) => *s,
            Self::LearningRate(_) => Setting::Lr,
            Self::ClassCount { .. } => Setting::Images,
            Self::OutOfRange { setting, .. } => *setting,
        }
    }

    /// The message, each setting named by `name`.
    pub fn describe(&self, name: SettingNames) -> String {
        match self {
            Self::Model(err @ AlexNetConfigError::ImageTooSmall { .. }) => {
                format!("{err}; choose a larger {}", name(Setting::ImageSize))
            }
            Self::Model(err @ AlexNetConfigError::ImageTooLarge { .. }) => {
                format!("{err}; choose a smaller {}", name(Setting::ImageSize))
            }
            Self::Model(err @ AlexNetConfigError::BatchTooLarge { .. }) => {
                format!("{} is too large: {err}", name(Setting::BatchSize))
            }
            Self::Model(err) => err.to_string(),
            Self::Zero(setting) => format!("{} must be at least 1", name(*setting)),
            Self::EmptySplit(setting) => {
                let split = match setting {
                    Setting::LimitTest => "test",
                    _ => "train",
                };
                format!(
                    "the {split} split is empty after {} 0; use a limit of at least 1",
                    name(*setting)
                )
            }
            Self::LearningRate(lr) => format!(
                "{} {lr} is not a usable learning rate: give a finite number above 0 (d2l uses \
                 0.01)",
                name(Setting::Lr)
            ),
            Self::ClassCount { names, outputs } => format!(
                "the config names {names} classes (data.classes) but the network has {outputs} \
                 outputs (model.num_classes); make them agree"
            ),
            Self::OutOfRange {
                setting,
                value,
                fix,
                needs,
            } => {
                let fix = needs.map_or(fix.to_string(), |n| fix.replace("{}", &name(n)));
                format!("{} {value} {fix}", name(*setting))
            }
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(&field_names))
    }
}

impl std::error::Error for ConfigError {}

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

    /// Checks every setting against its range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.model.validate().map_err(ConfigError::Model)?;
        for (setting, value) in [
            (Setting::Epochs, self.epochs),
            (Setting::BatchSize, self.batch_size),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(setting));
            }
        }
        self.model
            .check_batch(self.batch_size, true)
            .map_err(ConfigError::Model)?;
        for (setting, limit) in [
            (Setting::LimitTrain, self.limit_train),
            (Setting::LimitTest, self.limit_test),
        ] {
            if limit == Some(0) {
                return Err(ConfigError::EmptySplit(setting));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ConfigError::LearningRate(self.lr));
        }
        if self.num_workers > MAX_WORKERS {
            return Err(ConfigError::OutOfRange {
                setting: Setting::NumWorkers,
                value: self.num_workers.to_string(),
                // The literal is MAX_WORKERS (a test keeps them equal).
                fix: "is too many: each is a thread holding a batch ahead; use at most 64",
                needs: None,
            });
        }
        self.validate_data()?;
        self.validate_optimizer()?;
        self.validate_fine_tuning()
    }

    /// The start, the early stop and the augmentation: each in its range and only where it
    /// applies.
    fn validate_fine_tuning(&self) -> Result<(), ConfigError> {
        let out = |setting, value: String, fix, needs| {
            Err(ConfigError::OutOfRange {
                setting,
                value,
                fix,
                needs,
            })
        };
        let value = |s: Setting| s.value_in(self);
        if self.init.checkpoint.is_some() && self.init.from.is_none() {
            let fix = "applies to a run named by {}";
            return out(
                Setting::InitCheckpoint,
                value(Setting::InitCheckpoint),
                fix,
                Some(Setting::InitFrom),
            );
        }
        if self.early_stop_patience == Some(0) {
            let fix = "must be at least 1 (epochs without a better validation loss)";
            return out(Setting::EarlyStopPatience, "0".into(), fix, None);
        }
        let a = &self.data.augment;
        let [low, high] = a.crop_scale;
        if !(low > 0.0 && low <= high && high <= 1.0) {
            let fix = "must be two fractions A,B with 0 < A <= B <= 1 (0.08,1 is torchvision's)";
            return out(Setting::CropScale, value(Setting::CropScale), fix, None);
        }
        if !a.crop && a.crop_scale != AugmentConfig::new().crop_scale {
            let fix = "applies with {} crop";
            return out(
                Setting::CropScale,
                value(Setting::CropScale),
                fix,
                Some(Setting::Augment),
            );
        }
        if a.pad_crop * 2 > self.model.image_size {
            let fix = "must be at most half of {}";
            return out(
                Setting::PadCrop,
                value(Setting::PadCrop),
                fix,
                Some(Setting::ImageSize),
            );
        }
        Ok(())
    }

    /// The image settings: a held-out fraction in range, and channels and classes that fit
    /// the images.
    fn validate_data(&self) -> Result<(), ConfigError> {
        let d = &self.data;
        let value = |s: Setting| s.value_in(self);
        let out = |setting, value: &dyn std::fmt::Display, fix, needs| {
            Err(ConfigError::OutOfRange {
                setting,
                value: value.to_string(),
                fix,
                needs,
            })
        };
        if !(d.val_split > 0.0 && d.val_split < 1.0) {
            let fix = "must lie in (0, 1) (0.1 is usual)";
            return out(Setting::ValSplit, &d.val_split, fix, None);
        }
        // config.json is JSON text: a path in it must be UTF-8 (the files inside a folder may
        // have any name; images.json escapes them).
        for (setting, path) in [
            (Setting::Images, &d.images),
            (Setting::InitFrom, &self.init.from),
        ] {
            if path.as_ref().is_some_and(|p| p.to_str().is_none()) {
                let fix = "is not UTF-8, which config.json cannot hold; rename it, or give it \
                           through a link whose name is UTF-8";
                return out(setting, &value(setting), fix, None);
            }
        }
        if !(0.0..=1.0).contains(&d.max_bad_fraction) {
            let fix = "must lie in [0, 1] (0.01 is the default)";
            return out(Setting::MaxBadFraction, &d.max_bad_fraction, fix, None);
        }
        if !d.skip_bad_images && d.max_bad_fraction != DataConfig::new().max_bad_fraction {
            let fix = "applies with {}";
            let needs = Some(Setting::SkipBadImages);
            return out(Setting::MaxBadFraction, &d.max_bad_fraction, fix, needs);
        }
        let channels = self.model.in_channels;
        match &d.images {
            None if channels != 1 => {
                let fix = "applies to an image folder ({}); Fashion-MNIST is grey";
                out(Setting::Channels, &channels, fix, Some(Setting::Images))
            }
            None if !d.reads_fashion_mnist() => {
                let fix = "must name an image folder to train classes other than Fashion-MNIST's";
                out(Setting::Images, &"none", fix, None)
            }
            Some(_) if channels != 1 && channels != 3 => {
                let fix = "must be 1 (grey) or 3 (colour)";
                out(Setting::Channels, &channels, fix, None)
            }
            _ if d.classes.len() != self.model.num_classes => Err(ConfigError::ClassCount {
                names: d.classes.len(),
                outputs: self.model.num_classes,
            }),
            _ => Ok(()),
        }
    }

    /// The optimizer and schedule settings, each against its range.
    fn validate_optimizer(&self) -> Result<(), ConfigError> {
        let o = &self.optimizer;
        let out = |setting, value: &dyn std::fmt::Display, fix, needs| {
            Err(ConfigError::OutOfRange {
                setting,
                value: value.to_string(),
                fix,
                needs,
            })
        };
        let unit = |v: f64| (0.0..1.0).contains(&v);
        if !unit(o.momentum) {
            let fix = "must lie in [0, 1) (0.9 is usual)";
            return out(Setting::Momentum, &o.momentum, fix, None);
        }
        if o.nesterov && o.momentum == 0.0 {
            let fix = "needs a {} above 0, e.g. {} 0.9";
            return out(Setting::Nesterov, &true, fix, Some(Setting::Momentum));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            let fix = "must be 0 or more (5e-4 is usual)";
            return out(Setting::WeightDecay, &o.weight_decay, fix, None);
        }
        if !(o.lr_gamma > 0.0 && o.lr_gamma <= 1.0) {
            let fix = "must lie in (0, 1] (0.1 is usual)";
            return out(Setting::LrGamma, &o.lr_gamma, fix, None);
        }
        let step_epochs = Setting::LrStepEpochs.value_in(self);
        let schedule = Some(Setting::LrSchedule);
        match (o.lr_schedule, o.lr_step_epochs) {
            (LrSchedule::Step, None | Some(0)) => {
                let fix = "must be at least 1 with {} step";
                return out(Setting::LrStepEpochs, &step_epochs, fix, schedule);
            }
            (LrSchedule::Constant | LrSchedule::Cosine, Some(_)) => {
                let fix = "only applies to {} step";
                return out(Setting::LrStepEpochs, &step_epochs, fix, schedule);
            }
            _ => {}
        }
        if o.lr_schedule == LrSchedule::Cosine && self.lr > 1.0 {
            let fix = "must be at most 1 with {} cosine";
            return out(Setting::Lr, &self.lr, fix, schedule);
        }
        if o.warmup_epochs > 0 && o.warmup_epochs >= self.epochs {
            let fix = "must be shorter than the run: fewer than {}";
            return out(
                Setting::WarmupEpochs,
                &o.warmup_epochs,
                fix,
                Some(Setting::Epochs),
            );
        }
        if let Some(x) = o.clip_grad_norm.filter(|x| !(x.is_finite() && *x > 0.0)) {
            let fix = "must be a finite number above 0";
            return out(Setting::ClipGradNorm, &x, fix, None);
        }
        if !unit(self.label_smoothing) {
            let fix = "must lie in [0, 1) (0.1 is usual)";
            return out(Setting::LabelSmoothing, &self.label_smoothing, fix, None);
        }
        if !(o.head_lr_mult.is_finite() && o.head_lr_mult > 0.0) {
            let fix = "must be a finite number above 0 (d2l's fine-tuning uses 10)";
            return out(Setting::HeadLrMult, &o.head_lr_mult, fix, None);
        }
        self.validate_adam()
    }

    /// Adam's settings in range, and each optimizer's settings only with that optimizer.
    fn validate_adam(&self) -> Result<(), ConfigError> {
        let o = &self.optimizer;
        let out = |setting, value: &dyn std::fmt::Display, fix, needs| {
            Err(ConfigError::OutOfRange {
                setting,
                value: value.to_string(),
                fix,
                needs,
            })
        };
        let kind = Some(Setting::Optimizer);
        let defaults = OptimizerConfig::new();
        if o.kind == OptimizerKind::Sgd {
            for (setting, given, default) in [
                (Setting::Beta1, o.beta1, defaults.beta1),
                (Setting::Beta2, o.beta2, defaults.beta2),
                (Setting::Eps, o.eps, defaults.eps),
            ] {
                if given != default {
                    return out(setting, &given, "applies to {} adam or adamw", kind);
                }
            }
            return Ok(());
        }
        if o.momentum > 0.0 || o.nesterov {
            let fix = "applies to {} sgd (adam's beta1 is its momentum)";
            return out(Setting::Momentum, &o.momentum, fix, kind);
        }
        for (setting, beta) in [(Setting::Beta1, o.beta1), (Setting::Beta2, o.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return out(
                    setting,
                    &beta,
                    "must lie in [0, 1) (0.9 and 0.999 are usual)",
                    None,
                );
            }
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return out(
                Setting::Eps,
                &o.eps,
                "must be a finite number above 0 (1e-8 is usual)",
                None,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_d2l_protocol() {
        let c = TrainingConfig::d2l(224);
        assert_eq!((c.epochs, c.batch_size, c.lr), (10, 128, 0.01));
        assert_eq!(c.model.image_size, 224);
        assert_eq!(c.model.dropout, 0.5);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let c = TrainingConfig::d2l(224);
        let err = |c: TrainingConfig| c.validate().unwrap_err().to_string();
        assert_eq!(err(c.clone().with_epochs(0)), "epochs must be at least 1");
        assert!(err(c.clone().with_batch_size(0)).starts_with("batch_size "));
        for lr in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(err(c.clone().with_lr(lr)).contains("is not a usable learning rate"));
        }
        let small = err(TrainingConfig::d2l(40));
        assert!(small.contains("at least 65"), "{small}");
        assert!(
            small.ends_with("choose a larger model.image_size"),
            "{small}"
        );
        assert_eq!(
            err(c.clone().with_limit_test(Some(0))),
            "the test split is empty after limit_test 0; use a limit of at least 1"
        );
        assert!(c.clone().with_num_workers(MAX_WORKERS).validate().is_ok());
        let workers = err(c.clone().with_num_workers(MAX_WORKERS + 1));
        assert!(
            workers.ends_with(&format!("use at most {MAX_WORKERS}")),
            "{workers}"
        );
        let huge = err(c.clone().with_batch_size(1 << 40));
        assert!(huge.starts_with("batch_size is too large: "), "{huge}");
        let big = err(TrainingConfig::d2l(2000));
        assert!(big.ends_with("choose a smaller model.image_size"), "{big}");
        let fraction = c
            .clone()
            .with_data(DataConfig::new().with_max_bad_fraction(0.5));
        assert_eq!(
            err(fraction),
            "data.max_bad_fraction 0.5 applies with data.skip_bad_images"
        );
    }

    #[test]
    fn the_caller_names_the_settings() {
        let flag = |s: Setting| format!("--{}", s.field().replace('_', "-"));
        let c = TrainingConfig::d2l(224).with_optimizer(OptimizerConfig::new().with_nesterov(true));
        let err = c.validate().unwrap_err();
        assert_eq!(err.setting(), Setting::Nesterov);
        assert_eq!(
            err.describe(&flag),
            "--optimizer.nesterov true needs a --optimizer.momentum above 0, e.g. \
             --optimizer.momentum 0.9"
        );
    }

    #[test]
    fn bad_optimizer_settings_name_the_setting_and_the_fix() {
        let c = TrainingConfig::d2l(224);
        let opt = |f: fn(OptimizerConfig) -> OptimizerConfig| {
            let c = c.clone();
            let optimizer = f(c.optimizer.clone());
            TrainingConfig { optimizer, ..c }
        };
        let err = |c: TrainingConfig| c.validate().unwrap_err().to_string();
        assert!(
            err(opt(|o| o.with_momentum(-0.5))).starts_with("optimizer.momentum -0.5 must lie in")
        );
        assert!(err(opt(|o| o.with_momentum(1.0))).contains("optimizer.momentum"));
        assert!(err(opt(|o| o.with_weight_decay(-1.0))).contains("optimizer.weight_decay"));
        assert!(err(opt(|o| o.with_lr_gamma(0.0))).contains("optimizer.lr_gamma"));
        let step = opt(|o| o.with_lr_schedule(LrSchedule::Step));
        assert_eq!(
            err(step.clone()),
            "optimizer.lr_step_epochs none must be at least 1 with optimizer.lr_schedule step"
        );
        let stepped = opt(|o| {
            o.with_lr_schedule(LrSchedule::Step)
                .with_lr_step_epochs(Some(3))
        });
        assert!(stepped.validate().is_ok());
        assert!(err(opt(|o| o.with_lr_step_epochs(Some(3)))).contains("only applies"));
        let cosine = opt(|o| o.with_lr_schedule(LrSchedule::Cosine));
        assert!(err(cosine.with_lr(2.0)).contains("at most 1"));
        assert!(err(opt(|o| o.with_warmup_epochs(10))).ends_with("fewer than epochs"));
        assert!(opt(|o| o.with_warmup_epochs(9)).validate().is_ok());
        let clip = err(opt(|o| o.with_clip_grad_norm(Some(0.0))));
        assert!(clip.starts_with("optimizer.clip_grad_norm 0 "), "{clip}");
        assert!(err(c.clone().with_label_smoothing(1.0)).contains("label_smoothing"));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_fine_tuning_settings_name_the_setting_and_the_fix() {
        let c = TrainingConfig::d2l(65);
        let err = |c: TrainingConfig| c.validate().unwrap_err().to_string();
        let mut checkpoint = c.clone();
        checkpoint.init.checkpoint = Some("best".into());
        assert_eq!(
            err(checkpoint),
            "init.checkpoint best applies to a run named by init.from"
        );
        assert!(
            err(c.clone().with_early_stop_patience(Some(0)))
                .starts_with("early_stop_patience 0 must be at least 1")
        );
        let augment = |f: fn(&mut AugmentConfig)| {
            let mut c = c.clone();
            f(&mut c.data.augment);
            c
        };
        let reversed = err(augment(|a| {
            a.crop = true;
            a.crop_scale = [0.9, 0.1];
        }));
        assert!(
            reversed.starts_with("data.augment.crop_scale 0.9,0.1 must be two fractions"),
            "{reversed}"
        );
        let nan = err(augment(|a| {
            a.crop = true;
            a.crop_scale = [f64::NAN; 2];
        }));
        assert!(nan.contains("must be two fractions"), "{nan}");
        let without_crop = err(augment(|a| a.crop_scale = [0.2, 0.5]));
        assert_eq!(
            without_crop,
            "data.augment.crop_scale 0.2,0.5 applies with data.augment crop"
        );
        let pad = err(augment(|a| a.pad_crop = 33));
        assert_eq!(
            pad,
            "data.augment.pad_crop 33 must be at most half of model.image_size"
        );
        assert!(augment(|a| a.pad_crop = 32).validate().is_ok());
        let opt = |f: fn(OptimizerConfig) -> OptimizerConfig| {
            let optimizer = f(c.optimizer.clone());
            TrainingConfig {
                optimizer,
                ..c.clone()
            }
        };
        assert_eq!(
            err(opt(|o| o.with_beta1(0.5))),
            "optimizer.beta1 0.5 applies to optimizer.kind adam or adamw"
        );
        fn adam(o: OptimizerConfig) -> OptimizerConfig {
            o.with_kind(OptimizerKind::Adam)
        }
        assert!(
            err(opt(|o| adam(o).with_beta2(1.0)))
                .starts_with("optimizer.beta2 1 must lie in [0, 1)")
        );
        assert!(err(opt(|o| adam(o).with_eps(0.0))).starts_with("optimizer.eps 0 must be"));
        assert!(
            err(opt(|o| o.with_head_lr_mult(0.0))).starts_with("optimizer.head_lr_mult 0 must be")
        );
        assert!(opt(|o| adam(o).with_beta1(0.5)).validate().is_ok());
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
