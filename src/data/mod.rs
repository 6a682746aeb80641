//! The images a run learns from: Fashion-MNIST's IDX files (d2l's data, the default) or a
//! folder of labelled image files ([`ImageFolder`]); each loaded as a Burn [`Dataset`] and
//! batched into `[batch, channels, side, side]` tensors resized as torchvision does.

mod augment;
mod batcher;
mod epochs;
mod export;
mod folder;
pub mod idx;
mod images;
pub mod path_text;
mod prefetch;
mod resize;
mod source;
mod walk;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataset::Dataset;

pub use augment::{Augmentation, epoch_seed};
pub use batcher::{
    BadImages, FashionMnistBatcher, FolderBatcher, ImageBatch, ImageFile, ImageFiles, LeaveOut,
    TooManyBad,
};
pub use epochs::{OnEpoch, Sample};
pub use export::export_png_folder;
pub use folder::{
    FolderError, ImageFolder, LabelledFile, Layout, Purpose, ScanOptions, SkippedFile,
    class_folder_name,
};
pub use idx::{IdxError, NUM_CLASSES, PIXELS, SIDE};
pub use images::{
    Encoded, Header, ImageError, ImageTransform, MAX_DECODE_BYTES, MAX_UPLOAD_DECODE_BYTES, Pixels,
    read_header,
};
pub use resize::Resize;
pub use source::{LoaderOptions, SplitImages};
pub use walk::{PassedOver, Unlistable, images_in};

/// Where the Debian package `dataset-fashion-mnist` installs the IDX files.
pub const DEBIAN_DATA_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Environment variable naming a directory with the IDX files.
pub const DATA_DIR_ENV: &str = "FASHION_MNIST_DIR";

/// One of the two Fashion-MNIST splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

impl Split {
    /// Images in the whole split of Fashion-MNIST.
    pub fn full_len(self) -> usize {
        match self {
            Split::Train => 60_000,
            Split::Test => 10_000,
        }
    }

    /// The file-name prefix of this split (`train` or `t10k`).
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Why the data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// No candidate directory holds the files.
    #[error(
        "Fashion-MNIST not found: looked for {wanted} in {looked}; install it with \
         `apt-get install -y dataset-fashion-mnist` or pass --data-dir DIR (or set {DATA_DIR_ENV})"
    )]
    NotFound {
        /// The file that was missing.
        wanted: String,
        /// The directories searched, comma-separated.
        looked: String,
    },
    /// A directory holds one file of a split but not the other.
    #[error(
        "{} holds {} but not {missing}; reinstall the data (apt-get install --reinstall \
         dataset-fashion-mnist) or copy the missing file there",
        dir.display(),
        present.display()
    )]
    Incomplete {
        /// The directory.
        dir: PathBuf,
        /// The file that is there.
        present: PathBuf,
        /// The file that is not.
        missing: String,
    },
    /// A file exists but is unusable.
    #[error(transparent)]
    Idx(#[from] IdxError),
}

/// The directories searched for the data, in order: the explicit one, `$FASHION_MNIST_DIR`,
/// then the Debian package's directory. An explicit directory is the only candidate.
pub fn candidate_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = explicit {
        return vec![dir.to_path_buf()];
    }
    let from_env = std::env::var_os(DATA_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    from_env
        .into_iter()
        .chain([PathBuf::from(DEBIAN_DATA_DIR)])
        .collect()
}

/// Finds `name` or `name.gz` in `dir`, preferring the raw file.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [name.to_string(), format!("{name}.gz")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// The image and label files of `split` in the first candidate directory that holds both.
pub fn locate(split: Split, explicit_dir: Option<&Path>) -> Result<(PathBuf, PathBuf), DataError> {
    let images = format!("{}-images-idx3-ubyte", split.prefix());
    let labels = format!("{}-labels-idx1-ubyte", split.prefix());
    let dirs = candidate_dirs(explicit_dir);
    for dir in &dirs {
        match (find_file(dir, &images), find_file(dir, &labels)) {
            (Some(i), Some(l)) => return Ok((i, l)),
            (Some(present), None) | (None, Some(present)) => {
                let missing = if present.to_string_lossy().contains(&images) {
                    &labels
                } else {
                    &images
                };
                return Err(DataError::Incomplete {
                    dir: dir.clone(),
                    present,
                    missing: format!("{missing}[.gz]"),
                });
            }
            (None, None) => {}
        }
    }
    let looked = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(DataError::NotFound {
        wanted: format!("{images}[.gz] and {labels}[.gz]"),
        looked,
    })
}

/// One image and its label.
#[derive(Debug, Clone)]
pub struct FashionMnistItem {
    /// 28x28 grey pixels, row-major, 0 = black background.
    pub pixels: Arc<[u8]>,
    /// Class index in `0..10`.
    pub label: u8,
}

/// A Fashion-MNIST split held in memory (47 MB for the training split).
#[derive(Debug, Clone)]
pub struct FashionMnist {
    pixels: Arc<Vec<u8>>,
    labels: Arc<Vec<u8>>,
}

impl FashionMnist {
    /// Loads `split` from the first directory of [`candidate_dirs`] that holds it.
    pub fn load(split: Split, explicit_dir: Option<&Path>) -> Result<Self, DataError> {
        let (images, labels) = locate(split, explicit_dir)?;
        Ok(Self::from_files(&images, &labels)?)
    }

    /// Loads a pair of IDX files, checking that they agree.
    pub fn from_files(images: &Path, labels: &Path) -> Result<Self, IdxError> {
        let pixels = idx::read_images(images)?;
        let label_vec = idx::read_labels(labels)?;
        if pixels.len() / PIXELS != label_vec.len() {
            return Err(IdxError::CountMismatch {
                images: images.to_path_buf(),
                image_count: pixels.len() / PIXELS,
                labels: labels.to_path_buf(),
                label_count: label_vec.len(),
            });
        }
        Ok(Self {
            pixels: Arc::new(pixels),
            labels: Arc::new(label_vec),
        })
    }

    /// Keeps the first `limit` items (all when `None` or larger than the split).
    pub fn truncated(mut self, limit: Option<usize>) -> Self {
        if let Some(n) = limit.filter(|&n| n < self.labels.len()) {
            self.labels = Arc::new(self.labels[..n].to_vec());
            self.pixels = Arc::new(self.pixels[..n * PIXELS].to_vec());
        }
        self
    }

    /// The label of every item, in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }
}

impl Dataset<FashionMnistItem> for FashionMnist {
    fn get(&self, index: usize) -> Option<FashionMnistItem> {
        let label = *self.labels.get(index)?;
        let pixels = self.pixels[index * PIXELS..(index + 1) * PIXELS].into();
        Some(FashionMnistItem { pixels, label })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_split(dir: &Path, prefix: &str, n: usize, gz: bool) {
        let pixels: Vec<u8> = (0..n * PIXELS).map(|i| (i % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let files = [
            (
                format!("{prefix}-images-idx3-ubyte"),
                idx::encode_images(&pixels),
            ),
            (
                format!("{prefix}-labels-idx1-ubyte"),
                idx::encode_labels(&labels),
            ),
        ];
        for (name, bytes) in files {
            if gz {
                use std::io::Write;
                let file = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
                let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
                enc.write_all(&bytes).unwrap();
                enc.finish().unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    #[test]
    fn loads_raw_and_gzip_splits_alike() {
        let (raw, gz) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_split(raw.path(), "train", 5, false);
        write_split(gz.path(), "train", 5, true);
        let a = FashionMnist::load(Split::Train, Some(raw.path())).unwrap();
        let b = FashionMnist::load(Split::Train, Some(gz.path())).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a.labels(), b.labels());
        let (x, y) = (a.get(3).unwrap(), b.get(3).unwrap());
        assert_eq!((x.label, &*x.pixels), (y.label, &*y.pixels));
        assert_eq!(x.pixels[0], ((3 * PIXELS) % 256) as u8);
        assert!(a.get(5).is_none());
        assert_eq!(a.truncated(Some(2)).len(), 2);
    }

    #[test]
    fn missing_files_name_the_places_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "train", 1, false);
        let err = FashionMnist::load(Split::Test, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("t10k-images-idx3-ubyte"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(
            err.contains("apt-get install -y dataset-fashion-mnist"),
            "{err}"
        );
    }

    #[test]
    fn image_label_count_mismatch_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "t10k", 3, false);
        let labels = dir.path().join("t10k-labels-idx1-ubyte");
        std::fs::write(&labels, idx::encode_labels(&[1, 2])).unwrap();
        let err = FashionMnist::load(Split::Test, Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("3 images but"), "{err}");
    }

    #[test]
    fn corrupt_gzip_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "t10k", 2, true);
        let images = dir.path().join("t10k-images-idx3-ubyte.gz");
        let bytes = std::fs::read(&images).unwrap();
        std::fs::write(&images, &bytes[..bytes.len() / 2]).unwrap();
        let err = FashionMnist::load(Split::Test, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t10k-images-idx3-ubyte.gz") && err.contains("gzip"),
            "{err}"
        );
    }
}
