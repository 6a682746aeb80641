//! The settings of a run one by one: [`Setting`] names each field of `config.json` that a user
//! chooses, and [`Overrides`] holds the values given for some of them (on the command line).
//! Messages below the command line name a setting by its field; the command line names it by
//! its flag.

use std::fmt;
use std::path::PathBuf;

use super::config::{
    AugmentConfig, DataConfig, InitConfig, LrSchedule, OptimizerConfig, OptimizerKind,
    TrainingConfig,
};

/// A field of `config.json` that a user chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// `model.image_size`: the side images are resized to.
    ImageSize,
    /// `batch_size`.
    BatchSize,
    /// `lr`: the learning rate.
    Lr,
    /// `seed`.
    Seed,
    /// `limit_train`: training images used.
    LimitTrain,
    /// `limit_test`: test images used.
    LimitTest,
    /// `optimizer.momentum`.
    Momentum,
    /// `optimizer.nesterov`.
    Nesterov,
    /// `optimizer.weight_decay`.
    WeightDecay,
    /// `optimizer.lr_schedule`.
    LrSchedule,
    /// `optimizer.lr_step_epochs`.
    LrStepEpochs,
    /// `optimizer.lr_gamma`.
    LrGamma,
    /// `optimizer.warmup_epochs`.
    WarmupEpochs,
    /// `optimizer.clip_grad_norm`.
    ClipGradNorm,
    /// `label_smoothing`.
    LabelSmoothing,
    /// `data.images`: the image folder (none: Fashion-MNIST).
    Images,
    /// `data.val_split`: the fraction of a folder held out.
    ValSplit,
    /// `model.in_channels`: 1 (grey) or 3 (colour).
    Channels,
    /// `data.skip_bad_images`.
    SkipBadImages,
    /// `data.max_bad_fraction`: the share of an epoch's images that may fail to read.
    MaxBadFraction,
    /// `epochs`.
    Epochs,
    /// `num_workers`: data-loading threads.
    NumWorkers,
    /// `optimizer.kind`: sgd, adam or adamw.
    Optimizer,
    /// `optimizer.beta1`.
    Beta1,
    /// `optimizer.beta2`.
    Beta2,
    /// `optimizer.eps`.
    Eps,
    /// `optimizer.head_lr_mult`: the output layer's rate over `lr`.
    HeadLrMult,
    /// `init.from`: the run or file the weights start from.
    InitFrom,
    /// `init.checkpoint`: the record of that run.
    InitCheckpoint,
    /// `init.freeze_features`.
    FreezeFeatures,
    /// `early_stop_patience`.
    EarlyStopPatience,
    /// `data.augment.hflip` and `data.augment.crop`, as a list.
    Augment,
    /// `data.augment.crop_scale`.
    CropScale,
    /// `data.augment.pad_crop`.
    PadCrop,
}

impl Setting {
    /// Every setting, in the order their conflicts with a saved run are reported.
    pub const ALL: [Setting; 34] = [
        Self::Images,
        Self::ValSplit,
        Self::Channels,
        Self::SkipBadImages,
        Self::MaxBadFraction,
        Self::InitFrom,
        Self::InitCheckpoint,
        Self::FreezeFeatures,
        Self::Augment,
        Self::CropScale,
        Self::PadCrop,
        Self::ImageSize,
        Self::BatchSize,
        Self::Lr,
        Self::Seed,
        Self::LimitTrain,
        Self::LimitTest,
        Self::Momentum,
        Self::Nesterov,
        Self::WeightDecay,
        Self::LrSchedule,
        Self::LrStepEpochs,
        Self::LrGamma,
        Self::WarmupEpochs,
        Self::ClipGradNorm,
        Self::LabelSmoothing,
        Self::Optimizer,
        Self::Beta1,
        Self::Beta2,
        Self::Eps,
        Self::HeadLrMult,
        Self::EarlyStopPatience,
        Self::Epochs,
        Self::NumWorkers,
    ];

    /// Its path in `config.json`.
    pub fn field(self) -> &'static str {
        match self {
            Self::ImageSize => "model.image_size",
            Self::BatchSize => "batch_size",
            Self::Lr => "lr",
            Self::Seed => "seed",
            Self::LimitTrain => "limit_train",
            Self::LimitTest => "limit_test",
            Self::Momentum => "optimizer.momentum",
            Self::Nesterov => "optimizer.nesterov",
            Self::WeightDecay => "optimizer.weight_decay",
            Self::LrSchedule => "optimizer.lr_schedule",
            Self::LrStepEpochs => "optimizer.lr_step_epochs",
            Self::LrGamma => "optimizer.lr_gamma",
            Self::WarmupEpochs => "optimizer.warmup_epochs",
            Self::ClipGradNorm => "optimizer.clip_grad_norm",
            Self::LabelSmoothing => "label_smoothing",
            Self::Images => "data.images",
            Self::ValSplit => "data.val_split",
            Self::Channels => "model.in_channels",
            Self::SkipBadImages => "data.skip_bad_images",
            Self::MaxBadFraction => "data.max_bad_fraction",
            Self::Epochs => "epochs",
            Self::NumWorkers => "num_workers",
            Self::Optimizer => "optimizer.kind",
            Self::Beta1 => "optimizer.beta1",
            Self::Beta2 => "optimizer.beta2",
            Self::Eps => "optimizer.eps",
            Self::HeadLrMult => "optimizer.head_lr_mult",
            Self::InitFrom => "init.from",
            Self::InitCheckpoint => "init.checkpoint",
            Self::FreezeFeatures => "init.freeze_features",
            Self::EarlyStopPatience => "early_stop_patience",
            Self::Augment => "data.augment",
            Self::CropScale => "data.augment.crop_scale",
            Self::PadCrop => "data.augment.pad_crop",
        }
    }

    /// Its value in `config`, as messages show it (`all` for no limit, `off` for no clipping).
    pub fn value_in(self, config: &TrainingConfig) -> String {
        let c = config;
        let o = &c.optimizer;
        let limit = |n: Option<usize>| n.map_or("all".to_string(), |n| n.to_string());
        match self {
            Self::ImageSize => c.model.image_size.to_string(),
            Self::BatchSize => c.batch_size.to_string(),
            Self::Lr => c.lr.to_string(),
            Self::Seed => c.seed.to_string(),
            Self::LimitTrain => limit(c.limit_train),
            Self::LimitTest => limit(c.limit_test),
            Self::Momentum => o.momentum.to_string(),
            Self::Nesterov => o.nesterov.to_string(),
            Self::WeightDecay => o.weight_decay.to_string(),
            Self::LrSchedule => o.lr_schedule.to_string(),
            Self::LrStepEpochs => o.lr_step_epochs.map_or("none".into(), |n| n.to_string()),
            Self::LrGamma => o.lr_gamma.to_string(),
            Self::WarmupEpochs => o.warmup_epochs.to_string(),
            Self::ClipGradNorm => o.clip_grad_norm.map_or("off".into(), |x| x.to_string()),
            Self::LabelSmoothing => c.label_smoothing.to_string(),
            Self::Images => c
                .data
                .images
                .as_ref()
                .map_or("none (Fashion-MNIST)".into(), |p| p.display().to_string()),
            Self::ValSplit => c.data.val_split.to_string(),
            Self::Channels => c.model.in_channels.to_string(),
            Self::SkipBadImages => c.data.skip_bad_images.to_string(),
            Self::MaxBadFraction => c.data.max_bad_fraction.to_string(),
            Self::Epochs => c.epochs.to_string(),
            Self::NumWorkers => c.num_workers.to_string(),
            Self::Optimizer => o.kind.to_string(),
            Self::Beta1 => o.beta1.to_string(),
            Self::Beta2 => o.beta2.to_string(),
            Self::Eps => o.eps.to_string(),
            Self::HeadLrMult => o.head_lr_mult.to_string(),
            Self::InitFrom => c
                .init
                .from
                .as_ref()
                .map_or("none".into(), |p| p.display().to_string()),
            Self::InitCheckpoint => c.init.checkpoint.clone().unwrap_or("none".into()),
            Self::FreezeFeatures => c.init.freeze_features.to_string(),
            Self::EarlyStopPatience => c
                .early_stop_patience
                .map_or("off".into(), |n| n.to_string()),
            Self::Augment => c.data.augment.names(),
            Self::CropScale => {
                let [a, b] = c.data.augment.crop_scale;
                format!("{a},{b}")
            }
            Self::PadCrop => c.data.augment.pad_crop.to_string(),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

/// How a message names settings: by field ([`Setting::field`]) or, on the command line, by flag.
pub type SettingNames<'a> = &'a dyn Fn(Setting) -> String;

/// The field names, for messages outside the command line.
pub fn field_names(setting: Setting) -> String {
    setting.field().to_string()
}

/// Values given for some settings of a run; `None` is "not given": the base configuration's
/// value stays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// [`Setting::Epochs`].
    pub epochs: Option<usize>,
    /// [`Setting::BatchSize`].
    pub batch_size: Option<usize>,
    /// [`Setting::Lr`].
    pub lr: Option<f64>,
    /// [`Setting::ImageSize`].
    pub image_size: Option<usize>,
    /// [`Setting::LimitTrain`].
    pub limit_train: Option<usize>,
    /// [`Setting::LimitTest`].
    pub limit_test: Option<usize>,
    /// [`Setting::Seed`].
    pub seed: Option<u64>,
    /// [`Setting::NumWorkers`].
    pub num_workers: Option<usize>,
    /// [`Setting::Momentum`].
    pub momentum: Option<f64>,
    /// [`Setting::Nesterov`].
    pub nesterov: Option<bool>,
    /// [`Setting::WeightDecay`].
    pub weight_decay: Option<f64>,
    /// [`Setting::LrSchedule`].
    pub lr_schedule: Option<LrSchedule>,
    /// [`Setting::LrStepEpochs`].
    pub lr_step_epochs: Option<usize>,
    /// [`Setting::LrGamma`].
    pub lr_gamma: Option<f64>,
    /// [`Setting::WarmupEpochs`].
    pub warmup_epochs: Option<usize>,
    /// [`Setting::ClipGradNorm`].
    pub clip_grad_norm: Option<f64>,
    /// [`Setting::LabelSmoothing`].
    pub label_smoothing: Option<f64>,
    /// [`Setting::Images`].
    pub images: Option<PathBuf>,
    /// [`Setting::ValSplit`].
    pub val_split: Option<f64>,
    /// [`Setting::Channels`].
    pub channels: Option<usize>,
    /// [`Setting::SkipBadImages`].
    pub skip_bad_images: Option<bool>,
    /// [`Setting::MaxBadFraction`].
    pub max_bad_fraction: Option<f64>,
    /// [`Setting::Optimizer`].
    pub optimizer: Option<OptimizerKind>,
    /// [`Setting::Beta1`].
    pub beta1: Option<f64>,
    /// [`Setting::Beta2`].
    pub beta2: Option<f64>,
    /// [`Setting::Eps`].
    pub eps: Option<f64>,
    /// [`Setting::HeadLrMult`].
    pub head_lr_mult: Option<f64>,
    /// [`Setting::InitFrom`].
    pub init_from: Option<PathBuf>,
    /// [`Setting::InitCheckpoint`].
    pub init_checkpoint: Option<String>,
    /// [`Setting::FreezeFeatures`].
    pub freeze_features: Option<bool>,
    /// [`Setting::EarlyStopPatience`].
    pub early_stop_patience: Option<usize>,
    /// [`Setting::Augment`]: hflip and crop.
    pub augment: Option<(bool, bool)>,
    /// [`Setting::CropScale`].
    pub crop_scale: Option<[f64; 2]>,
    /// [`Setting::PadCrop`].
    pub pad_crop: Option<usize>,
}

impl Overrides {
    /// `base` with every given value applied.
    pub fn applied_to(&self, base: TrainingConfig) -> TrainingConfig {
        let o = base.optimizer;
        let optimizer = OptimizerConfig {
            momentum: self.momentum.unwrap_or(o.momentum),
            nesterov: self.nesterov.unwrap_or(o.nesterov),
            weight_decay: self.weight_decay.unwrap_or(o.weight_decay),
            lr_schedule: self.lr_schedule.unwrap_or(o.lr_schedule),
            lr_step_epochs: self.lr_step_epochs.or(o.lr_step_epochs),
            lr_gamma: self.lr_gamma.unwrap_or(o.lr_gamma),
            warmup_epochs: self.warmup_epochs.unwrap_or(o.warmup_epochs),
            clip_grad_norm: self.clip_grad_norm.or(o.clip_grad_norm),
            kind: self.optimizer.unwrap_or(o.kind),
            beta1: self.beta1.unwrap_or(o.beta1),
            beta2: self.beta2.unwrap_or(o.beta2),
            eps: self.eps.unwrap_or(o.eps),
            head_lr_mult: self.head_lr_mult.unwrap_or(o.head_lr_mult),
        };
        let mut model = base.model;
        model.image_size = self.image_size.unwrap_or(model.image_size);
        model.in_channels = self.channels.unwrap_or(model.in_channels);
        let d = base.data;
        let a = d.augment.clone();
        let (hflip, crop) = self.augment.unwrap_or((a.hflip, a.crop));
        let augment = AugmentConfig {
            hflip,
            crop,
            crop_scale: self.crop_scale.unwrap_or(a.crop_scale),
            pad_crop: self.pad_crop.unwrap_or(a.pad_crop),
        };
        let data = DataConfig {
            images: self.images.clone().or(d.images),
            val_split: self.val_split.unwrap_or(d.val_split),
            skip_bad_images: self.skip_bad_images.unwrap_or(d.skip_bad_images),
            max_bad_fraction: self.max_bad_fraction.unwrap_or(d.max_bad_fraction),
            augment,
            ..d
        };
        let i = base.init;
        let init = InitConfig {
            from: self.init_from.clone().or(i.from),
            checkpoint: self.init_checkpoint.clone().or(i.checkpoint),
            freeze_features: self.freeze_features.unwrap_or(i.freeze_features),
            loaded: i.loaded,
        };
        TrainingConfig {
            model,
            epochs: self.epochs.unwrap_or(base.epochs),
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            lr: self.lr.unwrap_or(base.lr),
            limit_train: self.limit_train.or(base.limit_train),
            limit_test: self.limit_test.or(base.limit_test),
            seed: self.seed.unwrap_or(base.seed),
            num_workers: self.num_workers.unwrap_or(base.num_workers),
            optimizer,
            label_smoothing: self.label_smoothing.unwrap_or(base.label_smoothing),
            data,
            init,
            early_stop_patience: self.early_stop_patience.or(base.early_stop_patience),
        }
    }

    /// The settings given with another value than `config` has, in [`Setting::ALL`]'s order.
    pub fn changes(&self, config: &TrainingConfig) -> Vec<Setting> {
        let changed = self.applied_to(config.clone());
        Setting::ALL
            .into_iter()
            .filter(|s| s.value_in(&changed) != s.value_in(config))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_given_changes_nothing() {
        let base = TrainingConfig::d2l(96).with_lr(0.1);
        assert_eq!(Overrides::default().applied_to(base.clone()), base);
        assert!(Overrides::default().changes(&base).is_empty());
    }

    #[test]
    fn given_values_replace_the_base_and_are_the_changes() {
        let base = TrainingConfig::d2l(224).with_limit_train(Some(50));
        let given = Overrides {
            image_size: Some(96),
            lr: Some(0.05),
            momentum: Some(0.9),
            limit_train: Some(50),
            ..Default::default()
        };
        let c = given.applied_to(base.clone());
        assert_eq!((c.model.image_size, c.lr), (96, 0.05));
        assert_eq!((c.optimizer.momentum, c.limit_train), (0.9, Some(50)));
        assert_eq!(
            given.changes(&base),
            [Setting::ImageSize, Setting::Lr, Setting::Momentum],
            "an equal value is no change"
        );
    }

    #[test]
    fn every_setting_is_reached_by_its_override() {
        let base = TrainingConfig::d2l(224);
        let all = Overrides {
            epochs: Some(3),
            batch_size: Some(3),
            lr: Some(0.3),
            image_size: Some(96),
            limit_train: Some(3),
            limit_test: Some(3),
            seed: Some(3),
            num_workers: Some(3),
            momentum: Some(0.3),
            nesterov: Some(true),
            weight_decay: Some(0.3),
            lr_schedule: Some(LrSchedule::Step),
            lr_step_epochs: Some(3),
            lr_gamma: Some(0.3),
            warmup_epochs: Some(2),
            clip_grad_norm: Some(3.0),
            label_smoothing: Some(0.3),
            images: Some("photos".into()),
            val_split: Some(0.3),
            channels: Some(3),
            skip_bad_images: Some(true),
            max_bad_fraction: Some(0.3),
            optimizer: Some(OptimizerKind::Adam),
            beta1: Some(0.3),
            beta2: Some(0.3),
            eps: Some(0.3),
            head_lr_mult: Some(3.0),
            init_from: Some("runs/a".into()),
            init_checkpoint: Some("best".into()),
            freeze_features: Some(true),
            early_stop_patience: Some(3),
            augment: Some((true, false)),
            crop_scale: Some([0.3, 0.5]),
            pad_crop: Some(3),
        };
        assert_eq!(all.changes(&base), Setting::ALL);
        let fields: std::collections::BTreeSet<&str> =
            Setting::ALL.iter().map(|s| s.field()).collect();
        assert_eq!(fields.len(), Setting::ALL.len(), "one field per setting");
    }
}
