//! The configuration of a training run from its flags: d2l's protocol where a flag is not
//! given, or the saved run's settings on `--resume`.

use clap::Args;

use crate::run::TrainingConfig;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
