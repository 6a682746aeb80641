//! The images of one split, from either source, and Burn's data loader over them.

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;

use super::FashionMnist;
use super::augment::Augmentation;
use super::batcher::{BadImages, FashionMnistBatcher, FolderBatcher, ImageBatch, ImageFiles};
use super::epochs::{EpochClock, EpochOrder, OnEpoch, Passes};
use super::images::ImageTransform;
use super::prefetch::{GatedBatcher, GatedLoader, Prefetch};

/// Batches each loading thread makes ahead of the step (PyTorch's `prefetch_factor` is 2).
const BATCHES_AHEAD_PER_WORKER: usize = 2;

/// The images of one split: Fashion-MNIST's, held in memory, or a folder's files, read batch by
/// batch.
#[derive(Debug, Clone)]
pub enum SplitImages {
    /// A Fashion-MNIST split.
    FashionMnist(FashionMnist),
    /// Files of an image folder.
    Files(ImageFiles),
}

/// How the loader makes batches.
#[derive(Clone)]
pub struct LoaderOptions {
    /// Images per batch.
    pub batch_size: usize,
    /// Shuffle every epoch by (this seed, epoch); `None` keeps the order.
    pub shuffle: Option<u64>,
    /// The epoch of the loader's first pass (1, or the one a resumed run continues with).
    pub first_epoch: usize,
    /// Called as each pass starts, with its epoch.
    pub on_epoch: Option<OnEpoch>,
    /// Random changes to each image (training only).
    pub augment: Augmentation,
    /// Threads making batches ahead of the step.
    pub num_workers: usize,
    /// The network's input: side and channels.
    pub transform: ImageTransform,
    /// What becomes of a file that cannot be decoded.
    pub bad: BadImages,
}

impl SplitImages {
    /// How many images.
    pub fn len(&self) -> usize {
        match self {
            Self::FashionMnist(d) => d.len(),
            Self::Files(d) => d.len(),
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class index of every image, in order.
    pub fn labels(&self) -> Vec<usize> {
        match self {
            Self::FashionMnist(d) => d.labels().iter().map(|&l| l as usize).collect(),
            Self::Files(d) => d.labels(),
        }
    }

    /// Keeps `limit` images: Fashion-MNIST's first ones, a folder's classes in turn.
    pub fn limited(self, limit: Option<usize>) -> Self {
        match self {
            Self::FashionMnist(d) => Self::FashionMnist(d.truncated(limit)),
            Self::Files(d) => Self::Files(d.limited(limit)),
        }
    }

    /// Burn's data loader of these images, on `device`, at most a few batches ahead of the
    /// step ([`Prefetch`]).
    pub fn loader<B: Backend>(
        self,
        options: &LoaderOptions,
        device: &B::Device,
    ) -> Arc<dyn DataLoader<B, ImageBatch<B>>> {
        let prefetch = Prefetch::new(BATCHES_AHEAD_PER_WORKER * options.num_workers.max(1));
        let clock = EpochClock::default();
        let loader = match self {
            Self::FashionMnist(data) => {
                let batcher = FashionMnistBatcher::new(options.transform.side)
                    .with_augmentation(options.augment);
                let batcher = GatedBatcher::new(batcher, prefetch.clone());
                let data = EpochOrder::new(data, clock.clone(), options.shuffle);
                build(DataLoaderBuilder::new(batcher), options, device).build(data)
            }
            Self::Files(files) => {
                let batcher =
                    FolderBatcher::new(options.transform, options.bad.clone(), options.augment);
                let batcher = GatedBatcher::new(batcher, prefetch.clone());
                let files = EpochOrder::new(files, clock.clone(), options.shuffle);
                build(DataLoaderBuilder::new(batcher), options, device).build(files)
            }
        };
        let passes = Passes::new(clock, options.first_epoch, options.on_epoch.clone());
        Arc::new(GatedLoader::new(loader, prefetch, passes))
    }
}

/// The builder with the options every loader shares.
fn build<B: Backend, I>(
    builder: DataLoaderBuilder<B, I, ImageBatch<B>>,
    options: &LoaderOptions,
    device: &B::Device,
) -> DataLoaderBuilder<B, I, ImageBatch<B>>
where
    I: Send + Sync + Clone + std::fmt::Debug + 'static,
{
    // Shuffled by `EpochOrder`, not by Burn's loader.
    builder
        .batch_size(options.batch_size)
        .num_workers(options.num_workers)
        .set_device(device.clone())
}
