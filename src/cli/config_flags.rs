//! The flags that set a training run's configuration, and the flag of each setting: messages
//! below the command line name settings by their `config.json` field, the command line by flag.

use std::path::PathBuf;

use clap::Args;

use crate::run::{LrSchedule, OptimizerKind, Overrides, Setting};

/// The flags that shape a training run; `None` means "not given": d2l's value for a new run,
/// the saved value on `--resume`.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct ConfigFlags {
    /// Passes over the training set [default: 10]; with --resume, may be raised.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per SGD step [default: 128].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// SGD learning rate [default: 0.01].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Side the 28x28 images are resized to (bilinear), at least 65 [default: 224].
    #[arg(long)]
    pub resize: Option<usize>,
    /// Train on the first N training images only [default: all 60,000].
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only [default: all 10,000].
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    /// Seed of weight init, dropout and shuffling [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Data-loading threads; more than 1 makes the batch order depend on thread timing
    /// [default: 1].
    #[arg(long)]
    pub num_workers: Option<usize>,
    /// Train on a folder of labelled images instead of Fashion-MNIST: DIR/<class>/… (a seeded
    /// --val-split of each class held out), or DIR/train/<class>/… and DIR/val/<class>/….
    #[arg(long, value_name = "DIR", help_heading = "Images")]
    pub images: Option<PathBuf>,
    /// The fraction of each class held out for validation when DIR has no train/ and val/
    /// [default: 0.1].
    #[arg(long, value_name = "F", help_heading = "Images")]
    pub val_split: Option<f64>,
    /// Input channels: 1 (grey) or 3 (colour) [default: 1 when every image is grey, else 3].
    #[arg(long, value_name = "1|3", help_heading = "Images")]
    pub channels: Option<usize>,
    /// Leave images that cannot be read out, and list them in the report, instead of refusing
    /// the folder.
    #[arg(long, help_heading = "Images")]
    pub skip_bad_images: bool,
    /// With --skip-bad-images: stop the run when more than this fraction of an epoch's images
    /// cannot be read while training (the checkpoint of the epoch before is kept)
    /// [default: 0.01].
    #[arg(long, value_name = "F", help_heading = "Images")]
    pub max_bad_fraction: Option<f64>,
    /// SGD momentum, dampening 0 as in PyTorch [default: 0, d2l's plain SGD].
    #[arg(long, allow_negative_numbers = true, help_heading = "Optimizer")]
    pub momentum: Option<f64>,
    /// Nesterov momentum (with --momentum).
    #[arg(long, help_heading = "Optimizer")]
    pub nesterov: bool,
    /// L2 weight decay, PyTorch's `weight_decay` [default: 0].
    #[arg(long, allow_negative_numbers = true, help_heading = "Optimizer")]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule over the run [default: constant].
    #[arg(long, value_enum, help_heading = "Optimizer")]
    pub lr_schedule: Option<LrSchedule>,
    /// Epochs between two decays of `--lr-schedule step`.
    #[arg(long, value_name = "N", help_heading = "Optimizer")]
    pub lr_step_epochs: Option<usize>,
    /// Decay factor of `--lr-schedule step` [default: 0.1].
    #[arg(long, allow_negative_numbers = true, help_heading = "Optimizer")]
    pub lr_gamma: Option<f64>,
    /// Epochs over which the learning rate climbs linearly to its scheduled value [default: 0].
    #[arg(long, value_name = "E", help_heading = "Optimizer")]
    pub warmup_epochs: Option<usize>,
    /// Clip each parameter's gradient to this L2 norm (Burn clips per tensor, PyTorch's
    /// clip_grad_norm_ all together) [default: off].
    #[arg(
        long,
        value_name = "X",
        allow_negative_numbers = true,
        help_heading = "Optimizer"
    )]
    pub clip_grad_norm: Option<f64>,
    /// Label smoothing of the cross-entropy [default: 0].
    #[arg(
        long,
        value_name = "S",
        allow_negative_numbers = true,
        help_heading = "Optimizer"
    )]
    pub label_smoothing: Option<f64>,
    /// The optimizer [default: sgd, d2l's]; --weight-decay is an L2 penalty for sgd and adam,
    /// decoupled for adamw.
    #[arg(long, value_enum, help_heading = "Optimizer")]
    pub optimizer: Option<OptimizerKind>,
    /// Adam's and AdamW's first-moment decay [default: 0.9].
    #[arg(long, allow_negative_numbers = true, help_heading = "Optimizer")]
    pub beta1: Option<f64>,
    /// Adam's and AdamW's second-moment decay [default: 0.999].
    #[arg(long, allow_negative_numbers = true, help_heading = "Optimizer")]
    pub beta2: Option<f64>,
    /// Adam's and AdamW's epsilon [default: 1e-8].
    #[arg(long, allow_negative_numbers = true, help_heading = "Optimizer")]
    pub eps: Option<f64>,
    /// The output layer's learning rate is --lr times M, as a parameter group of its own
    /// (PyTorch's semantics, exact for every optimizer) [default: 1].
    #[arg(
        long,
        value_name = "M",
        allow_negative_numbers = true,
        help_heading = "Fine-tuning"
    )]
    pub head_lr_mult: Option<f64>,
    /// Start from another network's weights: a run directory, or d2l's PyTorch state dict or
    /// safetensors file. Layers that fit are loaded; a new output layer for other classes.
    #[arg(long, value_name = "RUN|FILE", help_heading = "Fine-tuning")]
    pub init_from: Option<PathBuf>,
    /// The record of the --init-from run: final, best, last or an epoch [default: final].
    #[arg(long, value_name = "CHECKPOINT", help_heading = "Fine-tuning")]
    pub init_checkpoint: Option<String>,
    /// Keep the five convolutions as they start; only the linear layers train.
    #[arg(long, help_heading = "Fine-tuning")]
    pub freeze_features: bool,
    /// Stop when the validation loss has not improved for N epochs; the final model is then
    /// the best epoch's [default: off].
    #[arg(long, value_name = "N", help_heading = "Fine-tuning")]
    pub early_stop_patience: Option<usize>,
    /// Random changes to the training images: hflip (mirror), crop (torchvision's
    /// RandomResizedCrop), or none [default: none].
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "hflip,crop",
        help_heading = "Augmentation"
    )]
    pub augment: Vec<Augment>,
    /// The area fraction range of --augment crop [default: 0.08,1].
    #[arg(
        long,
        value_name = "A,B",
        value_delimiter = ',',
        help_heading = "Augmentation"
    )]
    pub crop_scale: Vec<f64>,
    /// Pad the input by P black pixels on each side and crop it back at a random place (the
    /// CIFAR recipe) [default: 0, off].
    #[arg(long, value_name = "P", help_heading = "Augmentation")]
    pub pad_crop: Option<usize>,
}

/// One `--augment` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Augment {
    /// Mirror left-right with probability 1/2.
    Hflip,
    /// A random part of the image stretched to the input size.
    Crop,
    /// No augmentation.
    None,
}

impl ConfigFlags {
    /// The settings these flags give.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            image_size: self.resize,
            limit_train: self.limit_train,
            limit_test: self.limit_test,
            seed: self.seed,
            num_workers: self.num_workers,
            momentum: self.momentum,
            nesterov: self.nesterov.then_some(true),
            weight_decay: self.weight_decay,
            lr_schedule: self.lr_schedule,
            lr_step_epochs: self.lr_step_epochs,
            lr_gamma: self.lr_gamma,
            warmup_epochs: self.warmup_epochs,
            clip_grad_norm: self.clip_grad_norm,
            label_smoothing: self.label_smoothing,
            images: self.images.clone(),
            val_split: self.val_split,
            channels: self.channels,
            skip_bad_images: self.skip_bad_images.then_some(true),
            max_bad_fraction: self.max_bad_fraction,
            optimizer: self.optimizer,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            head_lr_mult: self.head_lr_mult,
            init_from: self.init_from.clone(),
            init_checkpoint: self.init_checkpoint.clone(),
            freeze_features: self.freeze_features.then_some(true),
            early_stop_patience: self.early_stop_patience,
            augment: (!self.augment.is_empty()).then(|| {
                let has = |a| self.augment.contains(&a);
                (has(Augment::Hflip), has(Augment::Crop))
            }),
            // Any count but two is refused by the config's check, naming the values.
            crop_scale: match self.crop_scale[..] {
                [] => None,
                [a, b] => Some([a, b]),
                _ => Some([f64::NAN; 2]),
            },
            pad_crop: self.pad_crop,
        }
    }
}

/// The flag that sets `setting`.
pub fn flag(setting: Setting) -> &'static str {
    match setting {
        Setting::ImageSize => "--resize",
        Setting::BatchSize => "--batch-size",
        Setting::Lr => "--lr",
        Setting::Seed => "--seed",
        Setting::LimitTrain => "--limit-train",
        Setting::LimitTest => "--limit-test",
        Setting::Momentum => "--momentum",
        Setting::Nesterov => "--nesterov",
        Setting::WeightDecay => "--weight-decay",
        Setting::LrSchedule => "--lr-schedule",
        Setting::LrStepEpochs => "--lr-step-epochs",
        Setting::LrGamma => "--lr-gamma",
        Setting::WarmupEpochs => "--warmup-epochs",
        Setting::ClipGradNorm => "--clip-grad-norm",
        Setting::LabelSmoothing => "--label-smoothing",
        Setting::Images => "--images",
        Setting::ValSplit => "--val-split",
        Setting::Channels => "--channels",
        Setting::SkipBadImages => "--skip-bad-images",
        Setting::MaxBadFraction => "--max-bad-fraction",
        Setting::Epochs => "--epochs",
        Setting::NumWorkers => "--num-workers",
        Setting::Optimizer => "--optimizer",
        Setting::Beta1 => "--beta1",
        Setting::Beta2 => "--beta2",
        Setting::Eps => "--eps",
        Setting::HeadLrMult => "--head-lr-mult",
        Setting::InitFrom => "--init-from",
        Setting::InitCheckpoint => "--init-checkpoint",
        Setting::FreezeFeatures => "--freeze-features",
        Setting::EarlyStopPatience => "--early-stop-patience",
        Setting::Augment => "--augment",
        Setting::CropScale => "--crop-scale",
        Setting::PadCrop => "--pad-crop",
    }
}

/// [`flag`] as a [`crate::run::SettingNames`].
pub fn flag_names(setting: Setting) -> String {
    flag(setting).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        flags: ConfigFlags,
    }

    /// Every setting's flag exists, and giving it sets that setting and no other.
    #[test]
    fn each_flag_sets_its_setting() {
        let base = crate::run::TrainingConfig::d2l(224);
        let command = Flags::command();
        for setting in Setting::ALL {
            let name = flag(setting).trim_start_matches("--");
            let arg = command.get_arguments().find(|a| a.get_long() == Some(name));
            let takes_value = arg
                .unwrap_or_else(|| panic!("no {name}"))
                .get_action()
                .takes_values();
            let value = match setting {
                Setting::LrSchedule => "step",
                Setting::Optimizer => "adam",
                Setting::Augment => "hflip",
                Setting::CropScale => "0.3,0.5",
                Setting::InitFrom | Setting::InitCheckpoint => "best",
                Setting::Images => "photos",
                Setting::WarmupEpochs | Setting::Epochs => "2",
                _ => "3",
            };
            let mut args = vec!["test", flag(setting)];
            if takes_value {
                args.push(value);
            }
            let given = Flags::try_parse_from(&args).unwrap().flags.overrides();
            assert_eq!(given.changes(&base), [setting], "{args:?}");
        }
    }
}
