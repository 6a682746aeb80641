//! A run configuration's checks: each setting's declared rules, then the network's and the
//! batch's budgets; and the error that names the setting to change.

use alexnet_model::AlexNetConfigError;

use super::super::config::TrainingConfig;
use super::{Check, Setting, SettingNames, field_names, fill};

/// A training setting that cannot work. [`ConfigError::describe`] names the settings involved as
/// the caller spells them (the command line: by flag); `Display` names them by field.
#[derive(Debug, Clone)]
pub enum ConfigError {
    /// The network cannot be built at this image size, or a batch is over its budget.
    Model(AlexNetConfigError),
    /// `data.classes` and the network's outputs disagree (a hand-edited config).
    ClassCount {
        /// Class names.
        names: usize,
        /// `model.num_classes`.
        outputs: usize,
    },
    /// A setting breaks one of its rules.
    Broken {
        /// The setting.
        setting: Setting,
        /// Its value, as messages show it.
        value: String,
        /// The rule, with its message.
        check: Check,
    },
}

impl ConfigError {
    /// A setting refused for a reason outside its declaration (the folder it names, …):
    /// `message` as a [`Check`]'s.
    pub fn refused(setting: Setting, value: String, message: &'static str) -> Self {
        let check = Check {
            holds: |_| false,
            message,
            needs: None,
        };
        Self::Broken {
            setting,
            value,
            check,
        }
    }

    /// The setting to change.
    pub fn setting(&self) -> Setting {
        match self {
            Self::Model(AlexNetConfigError::BatchTooLarge { .. }) => Setting::BatchSize,
            Self::Model(_) => Setting::ImageSize,
            Self::ClassCount { .. } => Setting::Images,
            Self::Broken { setting, .. } => *setting,
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
            Self::ClassCount { names, outputs } => format!(
                "the config names {names} classes (data.classes) but the network has {outputs} \
                 outputs (model.num_classes); make them agree"
            ),
            Self::Broken {
                setting,
                value,
                check,
            } => fill(check, *setting, value, name),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(&field_names))
    }
}

impl std::error::Error for ConfigError {}

impl TrainingConfig {
    /// Checks every setting against its rules (declared with it, [`Setting::declaration`]), then
    /// the network and the batch against their budgets.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.model.validate().map_err(ConfigError::Model)?;
        for &setting in Setting::ALL {
            if let Some(check) = setting.broken_check(self) {
                return Err(ConfigError::Broken {
                    setting,
                    value: setting.value_in(self),
                    check: *check,
                });
            }
        }
        self.model
            .check_batch(self.batch_size, true)
            .map_err(ConfigError::Model)?;
        if self.data.classes.len() != self.model.num_classes {
            return Err(ConfigError::ClassCount {
                names: self.data.classes.len(),
                outputs: self.model.num_classes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::config::{
        AugmentConfig, DataConfig, LrSchedule, MAX_WORKERS, OptimizerConfig, OptimizerKind,
    };
    use super::*;

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
        let draft = err(augment(|a| a.jpeg_draft = true));
        assert!(
            draft.starts_with("data.augment.jpeg_draft applies to folders"),
            "{draft}"
        );
        let mut folder = augment(|a| a.jpeg_draft = true);
        folder.data.images = Some("photos".into());
        assert!(folder.validate().is_ok());
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
}
