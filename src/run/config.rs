//! The full configuration of a run (model + protocol), saved as `config.json`, and its checks.

use alexnet_model::{AlexNetConfig, AlexNetConfigError};
use burn::config::Config;

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
}

/// A training setting that cannot work; the message names the flag to change.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The model part is invalid.
    #[error("{}{}", .0, resize_hint(.0))]
    Model(#[from] AlexNetConfigError),
    /// A count that must be positive is zero.
    #[error("--{flag} must be at least 1")]
    Zero {
        /// The flag.
        flag: &'static str,
    },
    /// A learning rate that SGD cannot use.
    #[error(
        "--lr {lr} is not a usable learning rate: give a finite number above 0 (d2l uses 0.01)"
    )]
    LearningRate {
        /// The value given.
        lr: f64,
    },
}

/// The flag that fixes a model error: the image size is `--resize`.
fn resize_hint(err: &AlexNetConfigError) -> &'static str {
    match err {
        AlexNetConfigError::ImageTooSmall { .. } => "; choose a larger --resize",
        _ => "",
    }
}

impl TrainingConfig {
    /// The d2l protocol at the given input size.
    pub fn d2l(resize: usize) -> Self {
        Self::new(AlexNetConfig::new().with_image_size(resize))
    }

    /// Checks every field; the error names the flag and the accepted range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.model.validate()?;
        for (flag, value) in [("epochs", self.epochs), ("batch-size", self.batch_size)] {
            if value == 0 {
                return Err(ConfigError::Zero { flag });
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ConfigError::LearningRate { lr: self.lr });
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
    fn bad_settings_name_the_flag() {
        let c = TrainingConfig::d2l(224);
        let err = |c: TrainingConfig| c.validate().unwrap_err().to_string();
        assert!(err(c.clone().with_epochs(0)).contains("--epochs"));
        assert!(err(c.clone().with_batch_size(0)).contains("--batch-size"));
        for lr in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(err(c.clone().with_lr(lr)).contains("--lr"));
        }
        assert!(err(TrainingConfig::d2l(40)).contains("at least 65"));
    }

    #[test]
    fn round_trips_through_json() {
        let c = TrainingConfig::d2l(96)
            .with_limit_train(Some(500))
            .with_seed(7);
        let json = serde_json::to_string(&c).unwrap();
        let back: TrainingConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
