//! One network's weights and one batch on several backends: the cross-backend comparisons
//! (`tests/parity.rs`, `tests/cudnn.rs`) start every backend from the same record.

use std::path::{Path, PathBuf};

use alexnet::data::{FashionMnist, FashionMnistBatcher, ImageBatch, Split};
use alexnet_model::{AlexNet, AlexNetConfig};
use burn::backend::Flex;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::tensor::backend::Backend;

/// The network at 65 px, without dropout: each backend draws its own masks, which would hide
/// real differences.
pub fn config() -> AlexNetConfig {
    AlexNetConfig::new().with_image_size(65).with_dropout(0.0)
}

/// The first 16 images of the synthetic test set at 65 px.
pub fn test_batch<B: Backend>(device: &B::Device) -> ImageBatch<B> {
    let test = FashionMnist::load(Split::Test, Some(super::synthetic_data_dir())).unwrap();
    let items = (0..16).map(|i| test.get(i).unwrap()).collect();
    FashionMnistBatcher::new(65).batch(items, device)
}

/// Loads the record at `path` on backend `B`.
pub fn load<B: Backend>(path: &Path) -> AlexNet<B> {
    load_of::<B>(path, &config())
}

/// Loads the record of a `config` network at `path` on backend `B`.
pub fn load_of<B: Backend>(path: &Path, config: &AlexNetConfig) -> AlexNet<B> {
    let device = Default::default();
    config
        .init::<B>(&device)
        .load_file(path, &alexnet::run::recorder(), &device)
        .unwrap()
}

/// Fresh weights (seeded) written as a record: every backend then starts from the same values.
/// (Burn draws parameters lazily: a network and its clone would draw different ones.)
pub fn initial_record(dir: &Path, seed: u64) -> PathBuf {
    initial_record_of(dir, seed, &config())
}

/// [`initial_record`] of a `config` network.
pub fn initial_record_of(dir: &Path, seed: u64, config: &AlexNetConfig) -> PathBuf {
    let device = Default::default();
    Flex::seed(&device, seed);
    let path = dir.join("initial");
    config
        .init::<Flex>(&device)
        .save_file(&path, &alexnet::run::recorder())
        .unwrap();
    path
}
