//! The full configuration of a run (model + protocol), saved as `config.json`.

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

/// The training flags a user gave; `None` means "not given" (use the default, or the saved value
/// when resuming).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigFlags {
    /// `--epochs`
    pub epochs: Option<usize>,
    /// `--batch-size`
    pub batch_size: Option<usize>,
    /// `--lr`
    pub lr: Option<f64>,
    /// `--resize`
    pub resize: Option<usize>,
    /// `--limit-train`
    pub limit_train: Option<usize>,
    /// `--limit-test`
    pub limit_test: Option<usize>,
    /// `--seed`
    pub seed: Option<u64>,
    /// `--num-workers` (may change on resume: it does not change what is learned)
    pub num_workers: Option<usize>,
}

/// A flag given to `--resume` that contradicts the saved run.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "--{flag} {given} conflicts with the run being resumed ({flag} {saved} in its config.json); \
     drop the flag to resume with the saved setting, or start a new run in another --artifact-dir"
)]
pub struct ResumeConflict {
    /// The flag.
    pub flag: &'static str,
    /// The value given now.
    pub given: String,
    /// The saved value.
    pub saved: String,
}

impl ConfigFlags {
    /// The configuration of a new run: d2l's protocol where a flag is not given.
    pub fn fresh(&self) -> TrainingConfig {
        let d = TrainingConfig::d2l(self.resize.unwrap_or(224));
        TrainingConfig {
            epochs: self.epochs.unwrap_or(d.epochs),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            lr: self.lr.unwrap_or(d.lr),
            limit_train: self.limit_train,
            limit_test: self.limit_test,
            seed: self.seed.unwrap_or(d.seed),
            num_workers: self.num_workers.unwrap_or(d.num_workers),
            model: d.model,
        }
    }

    /// The saved configuration with the flags applied: `--epochs` and `--num-workers` may
    /// change, every other flag must agree with the saved value.
    pub fn resumed(&self, saved: TrainingConfig) -> Result<TrainingConfig, ResumeConflict> {
        fn same<T: PartialEq + std::fmt::Display>(
            flag: &'static str,
            given: Option<T>,
            saved: T,
        ) -> Result<(), ResumeConflict> {
            match given {
                Some(given) if given != saved => Err(ResumeConflict {
                    flag,
                    given: given.to_string(),
                    saved: saved.to_string(),
                }),
                _ => Ok(()),
            }
        }
        let shown = |limit: Option<usize>| limit.map_or("all".to_string(), |n| n.to_string());
        same("resize", self.resize, saved.model.image_size)?;
        same("batch-size", self.batch_size, saved.batch_size)?;
        same("lr", self.lr, saved.lr)?;
        same("seed", self.seed, saved.seed)?;
        same(
            "limit-train",
            self.limit_train.map(Some).map(shown),
            shown(saved.limit_train),
        )?;
        same(
            "limit-test",
            self.limit_test.map(Some).map(shown),
            shown(saved.limit_test),
        )?;
        Ok(TrainingConfig {
            epochs: self.epochs.unwrap_or(saved.epochs),
            num_workers: self.num_workers.unwrap_or(saved.num_workers),
            ..saved
        })
    }
}

/// A training setting that cannot work; the message names the flag to change.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The model part is invalid.
    #[error(transparent)]
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
    fn fresh_runs_take_flags_over_defaults() {
        let flags = ConfigFlags {
            resize: Some(96),
            lr: Some(0.1),
            limit_train: Some(10),
            ..Default::default()
        };
        let c = flags.fresh();
        assert_eq!(
            (c.model.image_size, c.lr, c.limit_train, c.epochs),
            (96, 0.1, Some(10), 10)
        );
    }

    #[test]
    fn resuming_allows_more_epochs_and_refuses_conflicts() {
        let saved = TrainingConfig::d2l(65)
            .with_epochs(2)
            .with_limit_train(Some(100));
        let more = ConfigFlags {
            epochs: Some(5),
            resize: Some(65),
            ..Default::default()
        };
        let resumed = more.resumed(saved.clone()).unwrap();
        assert_eq!(resumed, saved.clone().with_epochs(5));
        let conflicts = [
            (
                "resize",
                ConfigFlags {
                    resize: Some(96),
                    ..Default::default()
                },
            ),
            (
                "lr",
                ConfigFlags {
                    lr: Some(0.5),
                    ..Default::default()
                },
            ),
            (
                "limit-train",
                ConfigFlags {
                    limit_train: Some(7),
                    ..Default::default()
                },
            ),
            (
                "limit-test",
                ConfigFlags {
                    limit_test: Some(7),
                    ..Default::default()
                },
            ),
        ];
        for (flag, flags) in conflicts {
            let err = flags.resumed(saved.clone()).unwrap_err();
            assert_eq!(err.flag, flag);
            assert!(err.to_string().contains("another --artifact-dir"), "{err}");
        }
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
