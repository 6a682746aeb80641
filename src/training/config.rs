//! The configuration of a training run from its flags: d2l's protocol where a flag is not
//! given, or the saved run's settings on `--resume`.

use clap::Args;

use crate::run::{LrSchedule, TrainingConfig};

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

/// Returns `Err` when a flag was given with another value than the saved one.
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

impl ConfigFlags {
    /// The configuration of a new run: `base` (d2l's protocol, or a `--config` file) with the
    /// given flags applied over it.
    pub fn fresh(&self, base: Option<TrainingConfig>) -> TrainingConfig {
        let base = base.unwrap_or_else(|| TrainingConfig::d2l(224));
        let mut c = self.applied(base);
        if let Some(resize) = self.resize {
            c.model.image_size = resize;
        }
        c.limit_train = self.limit_train.or(c.limit_train);
        c.limit_test = self.limit_test.or(c.limit_test);
        c
    }

    /// `base` with every flag that may change between runs applied.
    fn applied(&self, base: TrainingConfig) -> TrainingConfig {
        let o = base.optimizer;
        let optimizer = crate::run::OptimizerConfig {
            momentum: self.momentum.unwrap_or(o.momentum),
            nesterov: self.nesterov || o.nesterov,
            weight_decay: self.weight_decay.unwrap_or(o.weight_decay),
            lr_schedule: self.lr_schedule.unwrap_or(o.lr_schedule),
            lr_step_epochs: self.lr_step_epochs.or(o.lr_step_epochs),
            lr_gamma: self.lr_gamma.unwrap_or(o.lr_gamma),
            warmup_epochs: self.warmup_epochs.unwrap_or(o.warmup_epochs),
            clip_grad_norm: self.clip_grad_norm.or(o.clip_grad_norm),
        };
        TrainingConfig {
            epochs: self.epochs.unwrap_or(base.epochs),
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            lr: self.lr.unwrap_or(base.lr),
            seed: self.seed.unwrap_or(base.seed),
            num_workers: self.num_workers.unwrap_or(base.num_workers),
            label_smoothing: self.label_smoothing.unwrap_or(base.label_smoothing),
            optimizer,
            ..base
        }
    }

    /// The saved configuration with the flags applied: `--epochs` and `--num-workers` may
    /// change, every other flag must agree with the saved value.
    pub fn resumed(&self, saved: TrainingConfig) -> Result<TrainingConfig, ResumeConflict> {
        let shown = |limit: Option<usize>| limit.map_or("all".to_string(), |n| n.to_string());
        let o = &saved.optimizer;
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
        same("momentum", self.momentum, o.momentum)?;
        same("nesterov", self.nesterov.then_some(true), o.nesterov)?;
        same("weight-decay", self.weight_decay, o.weight_decay)?;
        same("lr-schedule", self.lr_schedule, o.lr_schedule)?;
        same(
            "lr-step-epochs",
            self.lr_step_epochs.map(Some).map(shown),
            shown(o.lr_step_epochs),
        )?;
        same("lr-gamma", self.lr_gamma, o.lr_gamma)?;
        same("warmup-epochs", self.warmup_epochs, o.warmup_epochs)?;
        let off = |x: Option<f64>| x.map_or("off".to_string(), |x| x.to_string());
        same(
            "clip-grad-norm",
            self.clip_grad_norm.map(Some).map(off),
            off(o.clip_grad_norm),
        )?;
        same(
            "label-smoothing",
            self.label_smoothing,
            saved.label_smoothing,
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
        let c = flags.fresh(None);
        assert_eq!(
            (c.model.image_size, c.lr, c.limit_train, c.epochs),
            (96, 0.1, Some(10), 10)
        );
    }

    #[test]
    fn flags_override_a_config_file_and_defaults_stay_d2ls() {
        assert_eq!(ConfigFlags::default().fresh(None), TrainingConfig::d2l(224));
        let file = TrainingConfig::d2l(96)
            .with_lr(0.1)
            .with_limit_train(Some(50));
        let flags = ConfigFlags {
            momentum: Some(0.9),
            lr: Some(0.05),
            ..Default::default()
        };
        let c = flags.fresh(Some(file));
        assert_eq!(
            (c.model.image_size, c.lr, c.limit_train),
            (96, 0.05, Some(50))
        );
        assert_eq!(c.optimizer.momentum, 0.9);
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
            (
                "momentum",
                ConfigFlags {
                    momentum: Some(0.9),
                    ..Default::default()
                },
            ),
            (
                "nesterov",
                ConfigFlags {
                    nesterov: true,
                    ..Default::default()
                },
            ),
            (
                "lr-schedule",
                ConfigFlags {
                    lr_schedule: Some(LrSchedule::Cosine),
                    ..Default::default()
                },
            ),
            (
                "warmup-epochs",
                ConfigFlags {
                    warmup_epochs: Some(1),
                    ..Default::default()
                },
            ),
            (
                "clip-grad-norm",
                ConfigFlags {
                    clip_grad_norm: Some(1.0),
                    ..Default::default()
                },
            ),
            (
                "label-smoothing",
                ConfigFlags {
                    label_smoothing: Some(0.1),
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
