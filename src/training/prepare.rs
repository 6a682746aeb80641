//! The second step: the run directory locked and made ready, the data loaded and the network
//! built or restored; nothing is trained yet.

use std::path::Path;

use anyhow::Result;
use burn::data::dataset::Dataset;
use burn::tensor::backend::AutodiffBackend;

use super::classifier::Classifier;
use super::init;
use super::options::RunOptions;
use super::plan::{Plan, Start};
use super::resume::{self, Resumption};
use super::warmup::{self, Phase};
use crate::backend;
use crate::data::{FashionMnist, ImageFiles, ImageFolder, Split, SplitImages};
use crate::run::{RunDir, RunLock, TrainingConfig};

/// Everything [`launch`] needs, decided before anything is written.
pub struct Prepared<B: AutodiffBackend> {
    pub run: RunDir,
    /// This process's hold on the run directory, until training returns.
    pub lock: RunLock,
    pub config: TrainingConfig,
    pub train_set: SplitImages,
    pub test_set: SplitImages,
    pub model: Classifier<B>,
    /// Epochs finished before this process (0 for a new run).
    pub done: usize,
}

/// The artifact directory locked and made ready, the data and the network; `None` when a
/// resumed run had nothing left to train.
pub fn prepare<B: AutodiffBackend>(
    device: &B::Device,
    Plan { mut config, folder }: Plan,
    options: &RunOptions,
) -> Result<Option<Prepared<B>>> {
    let run = RunDir::new(&options.artifact_dir);
    let lock = run.lock()?;
    let (train_set, test_set) = match &folder {
        Some(folder) => folder_splits(folder),
        None => {
            let data_dir = options.data_dir.as_deref();
            let train = load_split(Split::Train, data_dir)?;
            (train, load_split(Split::Test, data_dir)?)
        }
    };
    let train_set = train_set.limited(config.limit_train);
    let test_set = test_set.limited(config.limit_test);
    let mut net = config.model.try_init::<B>(device)?;
    let done = match &options.start {
        Start::New { overwrite, .. } => {
            run.prepare_new(*overwrite)?;
            net = init::start_from(&mut config, net, device)?;
            0
        }
        Start::Resume => {
            match resume::prepare(&run, &config, &Classifier::new(net.clone()), device)? {
                Resumption::From(done) => done,
                Resumption::Finished(_) => return Ok(None),
            }
        }
    };
    if config.init.freeze_features {
        net = net.freeze_features();
    }
    let model = Classifier::new(net);
    if let Some(folder) = &folder {
        run.save_json(&run.images_file(), folder)?;
    }
    run.save_config(&config)?;
    Ok(Some(Prepared {
        run,
        lock,
        config,
        train_set,
        test_set,
        model,
        done,
    }))
}

/// Loads one Fashion-MNIST split.
pub fn load_split(split: Split, dir: Option<&Path>) -> Result<SplitImages> {
    let data = FashionMnist::load(split, dir)?;
    if data.is_empty() {
        anyhow::bail!("the {split} split of the data holds no images; use a complete data set");
    }
    Ok(SplitImages::FashionMnist(data))
}

/// An image folder's training and validation files.
pub fn folder_splits(folder: &ImageFolder) -> (SplitImages, SplitImages) {
    let files = |val| {
        let files = folder.files(val).to_vec();
        SplitImages::Files(ImageFiles::new(folder.root.clone(), files))
    };
    (files(false), files(true))
}

/// Compiles and tunes the kernels of this run's steps before the Learner starts (and before
/// the seed is set, so the run's numbers do not change), one line per step.
pub fn compile_kernels<B: AutodiffBackend>(
    prepared: &Prepared<B>,
    device: &B::Device,
    cache: &Path,
) -> Result<()> {
    let config = &prepared.config;
    println!(
        "kernels: compiling and tuning the GPU kernels of this run ({} tuned kernels cached in \
         {}; `alexnet warmup` does this once, ahead)",
        backend::count_tuned_keys(cache),
        cache.display()
    );
    let phases = Phase::of_training(
        config.batch_size,
        prepared.train_set.len(),
        prepared.test_set.len(),
    );
    warmup::warm_up::<B>(device, config, &phases, Some(cache), |t| {
        println!(
            "kernels: {} ready in {:.1} s ({} tuned)",
            t.phase, t.seconds, t.tuned_keys
        )
    })?;
    Ok(())
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::run::{Overrides, Setting, Value};
    use crate::training::options::Display;
    use crate::training::plan::resolve_config;

    type B = burn::backend::Autodiff<burn::backend::Flex>;

    #[test]
    fn a_new_run_is_locked_recorded_and_loaded_before_anything_trains() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        for class in ["cat", "dog"] {
            for i in 0..3 {
                let path = tree.join(class).join(format!("{i}.png"));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                image::GrayImage::from_pixel(8, 8, image::Luma([40]))
                    .save(path)
                    .unwrap();
            }
        }
        let run = RunDir::new(dir.path().join("run"));
        let start = Start::New {
            base: None,
            overwrite: false,
        };
        let given = Overrides::default()
            .with(Setting::Images, Value::Path(tree))
            .with(Setting::ImageSize, Value::Count(65))
            .with(Setting::ValSplit, Value::Number(0.34));
        let plan = resolve_config(&run, &start, &given).unwrap();
        let options = RunOptions {
            artifact_dir: run.path().to_path_buf(),
            data_dir: None,
            start,
            display: Display::Quiet,
            device_label: "cpu".into(),
            kernel_cache: None,
        };
        let prepared = prepare::<B>(&Default::default(), plan, &options)
            .unwrap()
            .expect("a new run has epochs to train");
        assert_eq!((prepared.train_set.len(), prepared.test_set.len()), (4, 2));
        assert_eq!(prepared.done, 0);
        assert!(run.lock().is_err(), "the run is held while it is prepared");
        assert!(run.path().join("images.json").exists());
        assert_eq!(run.load_config().unwrap(), prepared.config);
        drop(prepared);
        assert!(run.lock().is_ok(), "and free once dropped");
    }
}
