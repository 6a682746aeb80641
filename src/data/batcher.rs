//! Turning items into `[batch, channels, side, side]` tensors in `[0, 1]`: Fashion-MNIST's
//! 28x28 pixels, or image files decoded and resized batch by batch, in parallel.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

use super::augment::Augmentation;
use super::epochs::Sample;
use super::folder::LabelledFile;
use super::images::{Encoded, ImageError, ImageTransform};
use super::resize::Resize;
use super::{FashionMnistItem, SIDE};

/// A batch of images `[batch, channels, side, side]` and their class indices `[batch]`.
#[derive(Debug, Clone)]
pub struct ImageBatch<B: Backend> {
    /// Pixels in `[0, 1]`.
    pub images: Tensor<B, 4>,
    /// Class indices.
    pub targets: Tensor<B, 1, Int>,
}

impl<B: Backend> ImageBatch<B> {
    /// `values` (`labels.len()` images of `channels x side x side`) and their labels, moved to
    /// the device as one buffer each.
    fn new(
        values: Vec<f32>,
        labels: Vec<i64>,
        (channels, side): (usize, usize),
        device: &B::Device,
    ) -> Self {
        let count = labels.len();
        let pixels = TensorData::new(values, [count, channels, side, side]);
        Self {
            images: Tensor::from_data(pixels, device),
            targets: Tensor::from_data(TensorData::new(labels, [count]), device),
        }
    }
}

/// Resizes (and, for training, augments) and stacks Fashion-MNIST items on the host, then moves
/// one contiguous buffer to the device.
#[derive(Debug, Clone)]
pub struct FashionMnistBatcher {
    resize: Resize,
    augment: Augmentation,
}

impl FashionMnistBatcher {
    /// A batcher producing `side x side` images.
    pub fn new(side: usize) -> Self {
        Self {
            resize: Resize::new(SIDE, SIDE, side),
            augment: Augmentation::default(),
        }
    }

    /// The batcher changing each image as `augment` draws.
    pub fn with_augmentation(self, augment: Augmentation) -> Self {
        Self { augment, ..self }
    }

    /// The inputs of `samples`, each changed as the augmentation draws for its epoch and index.
    fn sample_pixels(&self, samples: &[Sample<FashionMnistItem>]) -> Vec<f32> {
        let side = self.resize.side();
        let mut out = vec![0f32; samples.len() * side * side];
        samples
            .par_iter()
            .zip(out.par_chunks_exact_mut(side * side))
            .for_each(|(s, dst)| {
                let at = (s.epoch, s.index);
                self.augment
                    .write(at, &[&s.item.pixels], (SIDE, SIDE), (side, side), dst)
            });
        out
    }

    /// Resized pixels of `items`, concatenated (`items.len() * side * side` values). The images
    /// are resized in parallel: one loader thread resizes about 13,000 images a second at 224
    /// px, and a GPU trains several times faster than that.
    pub fn pixels(&self, items: &[FashionMnistItem]) -> Vec<f32> {
        let area = self.resize.side() * self.resize.side();
        let mut out = vec![0f32; items.len() * area];
        items
            .par_iter()
            .zip(out.par_chunks_exact_mut(area))
            .for_each(|(item, dst)| self.resize.resize_into(&item.pixels, dst));
        out
    }
}

/// Plain items, never augmented (evaluation and inference outside a loader).
impl<B: Backend> Batcher<B, FashionMnistItem, ImageBatch<B>> for FashionMnistBatcher {
    fn batch(&self, items: Vec<FashionMnistItem>, device: &B::Device) -> ImageBatch<B> {
        let labels = items.iter().map(|item| item.label as i64).collect();
        ImageBatch::new(self.pixels(&items), labels, (1, self.resize.side()), device)
    }
}

impl<B: Backend> Batcher<B, Sample<FashionMnistItem>, ImageBatch<B>> for FashionMnistBatcher {
    fn batch(&self, items: Vec<Sample<FashionMnistItem>>, device: &B::Device) -> ImageBatch<B> {
        let labels = items.iter().map(|s| s.item.label as i64).collect();
        let pixels = self.sample_pixels(&items);
        ImageBatch::new(pixels, labels, (1, self.resize.side()), device)
    }
}

/// One image file of a folder and its class index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// The file.
    pub path: PathBuf,
    /// Its class index.
    pub label: usize,
}

/// The images of one split of a folder, as a Burn [`Dataset`]: paths only, decoded by the
/// [`FolderBatcher`] when their batch is made.
#[derive(Debug, Clone)]
pub struct ImageFiles {
    root: PathBuf,
    files: Arc<Vec<LabelledFile>>,
}

impl ImageFiles {
    /// The files of `files`, relative to `root`.
    pub fn new(root: PathBuf, files: Vec<LabelledFile>) -> Self {
        Self {
            root,
            files: Arc::new(files),
        }
    }

    /// Keeps `limit` files (all when `None` or more than there are), taking the classes in
    /// turn, so that a limited set still holds every class.
    pub fn limited(self, limit: Option<usize>) -> Self {
        let Some(limit) = limit.filter(|&n| n < self.files.len()) else {
            return self;
        };
        let mut turn = std::collections::HashMap::new();
        let mut ranked: Vec<(usize, usize, &LabelledFile)> = self
            .files
            .iter()
            .map(|f| {
                let n = turn.entry(f.label).or_insert(0);
                *n += 1;
                (*n, f.label, f)
            })
            .collect();
        ranked.sort_by_key(|(n, label, _)| (*n, *label));
        let files = ranked
            .into_iter()
            .take(limit)
            .map(|(_, _, f)| f.clone())
            .collect();
        Self::new(self.root, files)
    }

    /// The label of every file, in order.
    pub fn labels(&self) -> Vec<usize> {
        self.files.iter().map(|f| f.label).collect()
    }
}

impl Dataset<ImageFile> for ImageFiles {
    fn get(&self, index: usize) -> Option<ImageFile> {
        let file = self.files.get(index)?;
        Some(ImageFile {
            path: self.root.join(&file.path),
            label: file.label,
        })
    }

    fn len(&self) -> usize {
        self.files.len()
    }
}

/// What becomes of an image that cannot be decoded while its batch is made (a file deleted or
/// damaged after the folder was scanned): it is left out of its batch and logged. Unless the
/// run leaves such images out ([`LeaveOut`]), `stop` is called with the error, so that the run
/// stops after the batch with the path named; when it does, each one is said on the console
/// with a running count, and the run stops once an epoch has lost more than its share.
#[derive(Clone)]
pub struct BadImages {
    policy: Policy,
    log: Arc<Mutex<BadLog>>,
    stop: Arc<dyn Fn(&str) + Send + Sync>,
}

/// How a split's unreadable images are handled while a run goes on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    /// Stop at the first.
    Stop,
    /// Leave them out, said on the console, up to a share of each epoch.
    LeaveOut(LeaveOut),
    /// Leave them out silently; the caller reads [`BadImages::found`] (evaluation, bench).
    Collect,
}

/// Leaving unreadable images out of a split while training, up to a share of each epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaveOut {
    /// The split's name in messages (`training`, `validation`).
    pub split: &'static str,
    /// The images of one epoch of the split.
    pub images: usize,
    /// The largest fraction of them an epoch may lose before the run stops.
    pub max_fraction: f64,
}

/// An epoch that lost more of a split's images than [`LeaveOut`] allows.
#[derive(Debug, Clone, PartialEq)]
pub struct TooManyBad {
    /// The split (`training`, `validation`).
    pub split: &'static str,
    /// The epoch.
    pub epoch: usize,
    /// Its images that could not be read so far.
    pub count: usize,
    /// Its images in all.
    pub images: usize,
    /// The fraction allowed.
    pub max_fraction: f64,
    /// The last one's error.
    pub last: String,
}

impl TooManyBad {
    /// What happened, the limit named by `limit` (its flag or field).
    pub fn describe(&self, limit: &str) -> String {
        format!(
            "{} of the {} {} images of epoch {} could not be read, over {limit} {}, e.g. {}; \
             the files may be changing under the run",
            self.count, self.images, self.split, self.epoch, self.max_fraction, self.last
        )
    }
}

/// The images that failed, and how many in each epoch.
#[derive(Debug, Default)]
struct BadLog {
    found: Vec<ImageError>,
    per_epoch: std::collections::BTreeMap<usize, usize>,
    /// The epoch that lost too many, once one has.
    too_many: Option<TooManyBad>,
    /// When the console last heard of one (at most a line a second).
    said: Option<std::time::Instant>,
}

impl std::fmt::Debug for BadImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BadImages")
            .field("policy", &self.policy)
            .field("log", &self.log)
            .finish()
    }
}

impl BadImages {
    /// Calls `stop` at the first bad image.
    pub fn stop_at_first(stop: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self::with(Policy::Stop, stop)
    }

    /// Leaves bad images out as `leave_out` says, calling `stop` when an epoch loses too many.
    pub fn leave_out(leave_out: LeaveOut, stop: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self::with(Policy::LeaveOut(leave_out), stop)
    }

    /// Leaves bad images out silently, for the caller to read from [`BadImages::found`].
    pub fn collect() -> Self {
        Self::with(Policy::Collect, |_| {})
    }

    fn with(policy: Policy, stop: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self {
            policy,
            log: Arc::default(),
            stop: Arc::new(stop),
        }
    }

    /// The bad images met so far.
    pub fn found(&self) -> Vec<ImageError> {
        self.log
            .lock()
            .expect("bad-image log poisoned")
            .found
            .clone()
    }

    /// The epoch that lost more images than allowed, if one did (the run was then stopped).
    pub fn too_many(&self) -> Option<TooManyBad> {
        self.log
            .lock()
            .expect("bad-image log poisoned")
            .too_many
            .clone()
    }

    fn record(&self, err: ImageError, epoch: usize) {
        let mut log = self.log.lock().expect("bad-image log poisoned");
        let count = {
            let count = log.per_epoch.entry(epoch).or_default();
            *count += 1;
            *count
        };
        let message = err.to_string();
        log.found.push(err);
        match self.policy {
            Policy::Stop => (self.stop)(&message),
            Policy::Collect => {}
            Policy::LeaveOut(leave_out) => {
                if leave_out.too_many(count) {
                    let too_many = TooManyBad {
                        split: leave_out.split,
                        epoch,
                        count,
                        images: leave_out.images,
                        max_fraction: leave_out.max_fraction,
                        last: message,
                    };
                    (self.stop)(&too_many.describe("the max bad fraction"));
                    log.too_many.get_or_insert(too_many);
                } else if log.said.is_none_or(|t| t.elapsed().as_secs_f64() >= 1.0) {
                    log.said = Some(std::time::Instant::now());
                    eprintln!(
                        "warning: {}",
                        leave_out.left_out_line(epoch, count, &message)
                    );
                }
            }
        }
    }
}

impl LeaveOut {
    /// Whether `count` bad images are more than an epoch may lose: its fraction of the
    /// images, rounded up, so that a small folder may lose one.
    fn too_many(&self, count: usize) -> bool {
        count as f64 > (self.max_fraction * self.images as f64).ceil()
    }

    fn share(&self, count: usize) -> String {
        format!(
            "{count} of the {} {} images of epoch",
            self.images, self.split
        )
    }

    /// The console line of one left-out image, with the epoch's running count.
    fn left_out_line(&self, epoch: usize, count: usize, message: &str) -> String {
        format!("left out {message}; {} {epoch} so far", self.share(count))
    }
}

/// Decodes, resizes (and, for training, augments) the files of a batch in parallel, on the
/// loader's thread (ahead of the training step), then moves one buffer to the device.
#[derive(Debug, Clone)]
pub struct FolderBatcher {
    transform: ImageTransform,
    bad: BadImages,
    augment: Augmentation,
}

impl FolderBatcher {
    /// Batches of `transform`'s images, changed as `augment` draws; bad files handled by `bad`.
    pub fn new(transform: ImageTransform, bad: BadImages, augment: Augmentation) -> Self {
        Self {
            transform,
            bad,
            augment,
        }
    }

    /// The inputs of `samples` that decode, with their labels; the others go to the log.
    pub fn pixels(&self, samples: &[Sample<ImageFile>]) -> (Vec<f32>, Vec<i64>) {
        let len = self.transform.values();
        let mut values = vec![0f32; samples.len() * len];
        let results: Vec<Result<(), ImageError>> = decode_pool().install(|| {
            samples
                .par_iter()
                .zip(values.par_chunks_exact_mut(len))
                .map(|(s, dst)| {
                    let image = Encoded::File(&s.item.path);
                    let at = (s.epoch, s.index);
                    self.transform.read_augmented(image, dst, &self.augment, at)
                })
                .collect()
        });
        if results.iter().all(Result::is_ok) {
            // The usual batch: no copy of its values (128 ImageNet inputs are 77 MB).
            let labels = samples.iter().map(|s| s.item.label as i64).collect();
            return (values, labels);
        }
        let (mut kept, mut labels) = (Vec::with_capacity(values.len()), Vec::new());
        for ((sample, result), chunk) in samples.iter().zip(results).zip(values.chunks_exact(len)) {
            match result {
                Ok(()) => {
                    kept.extend_from_slice(chunk);
                    labels.push(sample.item.label as i64);
                }
                Err(err) => self.bad.record(err, sample.epoch),
            }
        }
        (kept, labels)
    }
}

/// The threads that decode a folder's batches, one per core. Not rayon's global pool: a
/// command runs on one of its workers (`backend::on_rayon_worker`), which blocks there while it
/// waits for the next batch, so the loader's images had one core of two (the loader measured
/// 250 images/s with the CPU at 100%, not 200%).
fn decode_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores)
            .thread_name(|i| format!("decode-{i}"))
            .build()
            .expect("threads for decoding images")
    })
}

impl<B: Backend> Batcher<B, Sample<ImageFile>, ImageBatch<B>> for FolderBatcher {
    fn batch(&self, items: Vec<Sample<ImageFile>>, device: &B::Device) -> ImageBatch<B> {
        let (mut values, mut labels) = self.pixels(&items);
        if labels.is_empty() {
            // Every image of the batch failed: stop even when skipping, and hand the step one
            // black image, whose epoch is then not kept (a batch cannot be empty).
            (self.bad.stop)("every image of a batch failed to decode; check the folder");
            values = vec![0.0; self.transform.values()];
            labels = vec![0];
        }
        let shape = (self.transform.channels, self.transform.side);
        ImageBatch::new(values, labels, shape, device)
    }
}
