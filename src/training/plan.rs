//! The first step of a run: its plan. For a new run, d2l's protocol or a saved configuration
//! with the given settings applied, and the image folder it names scanned; for a resumed one,
//! the saved configuration, which the given settings may only extend.

use std::path::PathBuf;

use anyhow::Result;

use alexnet_model::Preprocess;

use super::{init, resume};
use crate::data::{ImageFolder, Layout, Purpose, ScanOptions};
use crate::run::{ConfigError, Overrides, RunDir, Setting, TrainingConfig};

/// How a run begins.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// A new run from d2l's protocol, or from a saved configuration (`base`); `overwrite`
    /// replaces an earlier run in the artifact directory.
    New {
        /// A `config.json` to start from instead of d2l's protocol.
        base: Option<PathBuf>,
        /// Replace the files of an earlier run.
        overwrite: bool,
    },
    /// Continue the run in the artifact directory from its newest complete checkpoint.
    Resume,
}
/// A run's configuration, checked, and for an image-folder run the scanned folder: its classes
/// and the files of each split.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The configuration, as `config.json` saves it.
    pub config: TrainingConfig,
    /// The folder's classes and files (`None` for Fashion-MNIST).
    pub folder: Option<ImageFolder>,
}

/// The run's plan: for a new run, d2l's protocol or the `base` file with `overrides` applied,
/// and the image folder it names scanned (its classes, and unless given its channels, go into
/// the config); for a resumed one, the saved configuration, which `overrides` may only extend
/// (the settings declared `may_resume`), and the saved folder split.
pub fn resolve_config(run: &RunDir, start: &Start, overrides: &Overrides) -> Result<Plan> {
    let plan = match start {
        Start::Resume => {
            let config = resume::saved_config(run, overrides)?;
            let folder = match config.data.images {
                Some(_) => Some(run.load_json(&run.images_file())?),
                None => None,
            };
            Plan { config, folder }
        }
        Start::New { base, .. } => {
            let base = match base {
                Some(file) => TrainingConfig::from_file_strict(file)?,
                None => TrainingConfig::d2l(224),
            };
            with_folder(
                with_source_preprocess(overrides.applied_to(base), overrides),
                overrides,
            )?
        }
    };
    plan.config.validate()?;
    Ok(plan)
}

/// The preprocessing of the network `init.from` names (ImageNet's for ImageNet weights) unless
/// `--preprocess` is `given`: weights read images as they were trained to.
fn with_source_preprocess(mut config: TrainingConfig, given: &Overrides) -> TrainingConfig {
    if given.given(Setting::Preprocess) {
        return config;
    }
    if let Some(preprocess) = config
        .init
        .from
        .as_deref()
        .and_then(init::source_preprocess)
    {
        config.data.preprocess = preprocess;
    }
    config
}

/// Scans the config's image folder, if it names one, and takes its classes, and its channels
/// unless `given`: three for ImageNet's preprocessing (grey images become three equal planes,
/// as PIL's `convert("RGB")` makes them), else one when every image is grey, else three. A held-out fraction `given` for a
/// folder that has its own `val/` is refused rather than ignored.
fn with_folder(mut config: TrainingConfig, given: &Overrides) -> Result<Plan> {
    let Some(root) = config.data.images.clone() else {
        return Ok(Plan {
            config,
            folder: None,
        });
    };
    let options = ScanOptions {
        val_fraction: config.data.val_split,
        seed: config.seed,
        skip_bad: config.data.skip_bad_images,
        purpose: Purpose::Training,
    };
    let folder = ImageFolder::scan(&root, options)?;
    if given.given(Setting::ValSplit) && folder.layout == Layout::TrainVal {
        return Err(ConfigError::refused(
            Setting::ValSplit,
            config.data.val_split.to_string(),
            "{flag} {value} applies to a folder without train/ and val/; this one has both, \
             and val/ is what is held out",
        )
        .into());
    }
    config.data.classes = folder.classes.clone();
    config.model.num_classes = folder.classes.len();
    if !given.given(Setting::Channels) {
        let grey = folder.all_grey && config.data.preprocess != Preprocess::Imagenet;
        config.model.in_channels = if grey { 1 } else { 3 };
    }
    Ok(Plan {
        config,
        folder: Some(folder),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Value;

    fn grey_image(path: &std::path::Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::GrayImage::from_pixel(8, 8, image::Luma([90]))
            .save(path)
            .unwrap();
    }

    fn new_run() -> Start {
        Start::New {
            base: None,
            overwrite: false,
        }
    }

    #[test]
    fn a_new_run_is_d2l_with_the_given_settings_checked() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let given = Overrides::default().with(Setting::Lr, Value::Number(0.1));
        let plan = resolve_config(&run, &new_run(), &given).unwrap();
        assert_eq!(plan.config, TrainingConfig::d2l(224).with_lr(0.1));
        assert!(plan.folder.is_none());
        let bad = Overrides::default().with(Setting::Lr, Value::Number(-1.0));
        let err = resolve_config(&run, &new_run(), &bad).unwrap_err();
        assert!(err.downcast_ref::<ConfigError>().is_some(), "{err:#}");
        assert!(
            !dir.path().join("config.json").exists(),
            "a plan writes nothing"
        );
    }

    #[test]
    fn a_folder_gives_its_classes_and_channels_and_refuses_a_held_out_fraction_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("run"));
        let tree = dir.path().join("tree");
        for split in ["train", "val"] {
            for class in ["cat", "dog"] {
                grey_image(&tree.join(split).join(class).join("a.png"));
            }
        }
        let folder = Overrides::default()
            .with(Setting::Images, Value::Path(tree.clone()))
            .with(Setting::ImageSize, Value::Count(65));
        let plan = resolve_config(&run, &new_run(), &folder).unwrap();
        assert_eq!(plan.config.data.classes, ["cat", "dog"]);
        assert_eq!(
            (plan.config.model.num_classes, plan.config.model.in_channels),
            (2, 1)
        );
        let split = folder.with(Setting::ValSplit, Value::Number(0.2));
        let err = resolve_config(&run, &new_run(), &split).unwrap_err();
        assert!(format!("{err:#}").contains("applies to a folder without train/"));
    }

    #[test]
    fn a_resumed_run_keeps_its_saved_settings() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let saved = TrainingConfig::d2l(65).with_epochs(2);
        run.save_config(&saved).unwrap();
        let more = Overrides::default().with(Setting::Epochs, Value::Count(4));
        let plan = resolve_config(&run, &Start::Resume, &more).unwrap();
        assert_eq!(plan.config, saved.with_epochs(4));
        let other = Overrides::default().with(Setting::Lr, Value::Number(0.5));
        assert!(resolve_config(&run, &Start::Resume, &other).is_err());
    }
}
