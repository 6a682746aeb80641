//! The data of a run: its training and test loaders, what becomes of images that fail to decode
//! while it trains, and the random changes to its training images.

use std::sync::Arc;

use burn::data::dataloader::DataLoader;
use burn::tensor::backend::AutodiffBackend;
use burn::train::Interrupter;

use crate::data::{
    Augmentation, BadImages, ImageBatch, ImageTransform, LeaveOut, LoaderOptions, SplitImages,
    epoch_seed,
};
use crate::run::TrainingConfig;

/// What becomes of a split's images that fail to decode while training: the run stops at the
/// first, or with `--skip-bad-images` once an epoch loses more than its share.
pub fn bad_images(
    config: &TrainingConfig,
    interrupter: &Interrupter,
    split: &'static str,
    images: usize,
) -> BadImages {
    let stopper = interrupter.clone();
    let stop = move |why: &str| stopper.stop(Some(why));
    match config.data.skip_bad_images {
        false => BadImages::stop_at_first(stop),
        true => {
            let leave_out = LeaveOut {
                split,
                images,
                max_fraction: config.data.max_bad_fraction,
            };
            BadImages::leave_out(leave_out, stop)
        }
    }
}

/// The loaders of one run: training batches on the autodiff backend, test batches on its inner
/// backend.
pub type Loaders<B> = (
    Arc<dyn DataLoader<B, ImageBatch<B>>>,
    Arc<
        dyn DataLoader<
                <B as AutodiffBackend>::InnerBackend,
                ImageBatch<<B as AutodiffBackend>::InnerBackend>,
            >,
    >,
);

/// The training and test loaders; `bad` handles a file that fails to decode. Burn draws
/// parameters lazily, at first use: seeding here fixes the initial weights. Each training epoch
/// then reseeds the backend (dropout) and draws its shuffle and augmentation from (seed,
/// epoch), so a resumed run trains on what an uninterrupted one would.
pub fn loaders<B: AutodiffBackend>(
    config: &TrainingConfig,
    done: usize,
    (train_set, test_set): (SplitImages, SplitImages),
    (device, [bad_train, bad_test]): (&B::Device, &[BadImages; 2]),
) -> Loaders<B> {
    let seed = config.seed;
    B::seed(device, seed);
    let reseed = device.clone();
    let options = LoaderOptions {
        batch_size: config.batch_size,
        shuffle: Some(config.data_seed()),
        num_workers: config.num_workers,
        transform: ImageTransform::new(config.model.image_size, config.model.in_channels)
            .with_preprocess(config.data.preprocess),
        bad: bad_train.clone(),
        first_epoch: done + 1,
        on_epoch: Some(Arc::new(move |epoch| {
            B::seed(&reseed, epoch_seed(seed, epoch))
        })),
        augment: augmentation(config),
    };
    let test = LoaderOptions {
        bad: bad_test.clone(),
        shuffle: None,
        on_epoch: None,
        augment: Augmentation::default(),
        ..options.clone()
    };
    (
        train_set.loader::<B>(&options, device),
        test_set.loader::<B::InnerBackend>(&test, device),
    )
}

/// The random changes `config` makes to the training images, drawn from its data seed.
pub fn augmentation(config: &TrainingConfig) -> Augmentation {
    let a = &config.data.augment;
    Augmentation {
        hflip: a.hflip,
        crop: a.crop.then_some(a.crop_scale),
        pad_crop: a.pad_crop,
        seed: config.data_seed(),
        jpeg_draft: a.jpeg_draft,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{FolderBatcher, ImageFile, Sample};
    use crate::run::{AugmentConfig, DataConfig};

    #[test]
    fn the_augmentation_is_the_configs_drawn_from_its_data_seed() {
        let d2l = TrainingConfig::d2l(65).with_seed(3);
        assert!(!augmentation(&d2l).any(), "d2l changes no image");
        assert_eq!(augmentation(&d2l).seed, 3);
        let mut augment = AugmentConfig::new();
        augment.crop = true;
        augment.pad_crop = 4;
        let data = DataConfig::new().with_augment(augment).with_seed(Some(9));
        let a = augmentation(&d2l.with_data(data));
        assert_eq!((a.crop, a.pad_crop, a.hflip), (Some([0.08, 1.0]), 4, false));
        assert_eq!(a.seed, 9, "the data seed, apart from the weights'");
    }

    /// A batch of `missing` files that are not there, for epoch 2.
    fn batch_of_missing(bad: &BadImages, missing: usize) {
        let transform = ImageTransform::new(8, 1);
        let batcher = FolderBatcher::new(transform, bad.clone(), Augmentation::default());
        let samples: Vec<Sample<ImageFile>> = (0..missing)
            .map(|index| Sample {
                item: ImageFile {
                    path: format!("/nonexistent/{index}.png").into(),
                    label: 0,
                },
                index,
                epoch: 2,
            })
            .collect();
        batcher.pixels(&samples);
    }

    #[test]
    fn unreadable_images_stop_the_run_at_once_or_past_their_share() {
        let interrupter = Interrupter::new();
        let strict = TrainingConfig::d2l(65);
        batch_of_missing(&bad_images(&strict, &interrupter, "training", 100), 1);
        assert!(
            interrupter.should_stop(),
            "without skipping, the first stops the run"
        );

        let skipping = DataConfig::new()
            .with_skip_bad_images(true)
            .with_max_bad_fraction(0.05);
        let lenient = TrainingConfig::d2l(65).with_data(skipping);
        let interrupter = Interrupter::new();
        let bad = bad_images(&lenient, &interrupter, "training", 100);
        batch_of_missing(&bad, 5);
        assert!(!interrupter.should_stop(), "5 of 100 is within 5%");
        batch_of_missing(&bad, 1);
        assert!(interrupter.should_stop());
        let too_many = bad.too_many().unwrap();
        assert_eq!(
            (too_many.count, too_many.images, too_many.epoch),
            (6, 100, 2)
        );
    }
}
