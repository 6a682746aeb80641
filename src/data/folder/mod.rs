//! A folder of labelled images in torchvision's `ImageFolder` layout: one subfolder per class,
//! its name the class's name, classes in sorted order. Either `DIR/train/<class>/…` and
//! `DIR/val/<class>/…`, or `DIR/<class>/…` split per class by a seeded fraction. Scanning
//! reads every image's header only, so that a bad file is found before training starts; the
//! pixels are decoded batch by batch while training runs.

use std::fs;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::images::{self, Header, ImageError};
use super::path_text::Shown;
use super::walk::{PassedOver, Unlistable, Walk};

/// How the folder holds its two splits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `DIR/train/` and `DIR/val/`, each with one subfolder per class.
    TrainVal,
    /// `DIR/<class>/`, with this fraction of each class held out for validation.
    HeldOut {
        /// The fraction of each class's images held out.
        fraction: f64,
        /// The seed of the draw.
        seed: u64,
    },
}

/// One image and its class index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledFile {
    /// The file, relative to the folder.
    #[serde(with = "super::path_text")]
    pub path: PathBuf,
    /// Its class index.
    pub label: usize,
}

/// A file that was left out because it cannot be read as an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// The file.
    #[serde(with = "super::path_text")]
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// The result of scanning a folder: its classes and the images of each split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageFolder {
    /// The folder.
    #[serde(with = "super::path_text")]
    pub root: PathBuf,
    /// How its splits were found.
    pub layout: Layout,
    /// Class names, in label order (sorted).
    pub classes: Vec<String>,
    /// Training images.
    pub train: Vec<LabelledFile>,
    /// Validation images.
    pub val: Vec<LabelledFile>,
    /// Unreadable files left out (only with `skip_bad`).
    pub skipped: Vec<SkippedFile>,
    /// Files that are not images by their name, left out.
    pub not_images: usize,
    /// FIFOs, sockets, devices and links that were not followed, left out.
    #[serde(default)]
    pub passed_over: PassedOver,
    /// Whether every image is grey (then one channel is the default).
    pub all_grey: bool,
}

/// How to scan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScanOptions {
    /// The fraction of each class held out when the folder has no `train/` and `val/`.
    pub val_fraction: f64,
    /// The seed of that draw.
    pub seed: u64,
    /// Leave unreadable images out instead of refusing the folder.
    pub skip_bad: bool,
    /// What the images are for: evaluation reads only `val/` of a folder that has one.
    pub purpose: Purpose,
}

/// What a scan's images are for, which decides the files it lists and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Both splits.
    Training,
    /// The images [`ImageFolder::for_run`] gives: `val/` of a folder that has one (`train/` is
    /// not read), else every image.
    Evaluation,
}

/// Why a folder cannot be used; every variant names the path to look at.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FolderError {
    /// The folder does not exist.
    #[error(
        "image folder {} does not exist; give the folder that holds one subfolder per class",
        Shown(.0)
    )]
    NotFound(PathBuf),
    /// The path is a file, not a folder.
    #[error(
        "{} is a file, not a folder; give the folder that holds one subfolder per class",
        Shown(.0)
    )]
    NotAFolder(PathBuf),
    /// A directory cannot be listed.
    #[error(transparent)]
    Unlistable(#[from] Unlistable),
    /// A class folder's name is not UTF-8, so it cannot be a class name.
    #[error("class folder {} has a name that is not UTF-8; rename it", Shown(.0))]
    NotUtf8(PathBuf),
    /// Fewer than two classes.
    #[error(
        "{} has {} class folder(s){}; a classifier needs at least 2: put each class's images \
         in a subfolder named after it",
        Shown(dir), found.len(), listed(found)
    )]
    TooFewClasses {
        /// The folder.
        dir: PathBuf,
        /// The classes found.
        found: Vec<String>,
    },
    /// A class folder with no image in it.
    #[error(
        "class folder {} holds no images ({not_images} other files); add images or remove \
         the folder",
        Shown(dir)
    )]
    EmptyClass {
        /// The class folder.
        dir: PathBuf,
        /// Files in it that are not images.
        not_images: usize,
    },
    /// `train/` and `val/` name different classes.
    #[error(
        "{} and {} have different class folders: train has {}, val has {}; give both the \
         same classes", Shown(train_dir), Shown(val_dir), train.join(", "), val.join(", ")
    )]
    ClassMismatch {
        /// `DIR/train`.
        train_dir: PathBuf,
        /// `DIR/val`.
        val_dir: PathBuf,
        /// Its classes.
        train: Vec<String>,
        /// `DIR/val`'s classes.
        val: Vec<String>,
    },
    /// A folder given for a run whose classes are not the same.
    #[error(
        "{} does not hold the run's classes: the folder has {}, the run has {}; give a folder \
         with one subfolder per class of the run", Shown(dir), folder.join(", "), run.join(", ")
    )]
    OtherClasses {
        /// The folder.
        dir: PathBuf,
        /// Its classes.
        folder: Vec<String>,
        /// The run's classes.
        run: Vec<String>,
    },
    /// Images that cannot be read, and `skip_bad` is off.
    #[error(
        "{count} of the files in {} cannot be used as images, e.g. {first}; fix or remove \
         them, or leave them out (skip bad images)",
        Shown(dir)
    )]
    BadImages {
        /// The folder.
        dir: PathBuf,
        /// How many.
        count: usize,
        /// The first, by path.
        first: ImageError,
    },
}

fn listed(names: &[String]) -> String {
    match names.is_empty() {
        true => String::new(),
        false => format!(" ({})", names.join(", ")),
    }
}

/// The folder a class's images go in: its name, with the characters a folder name cannot hold
/// (`/`, `\`) written as `_` (Fashion-MNIST's "T-shirt/top" is `T-shirt_top`). A folder's
/// class matches a run's class when the run's name gives the folder's.
pub fn class_folder_name(class: &str) -> String {
    class.replace(['/', '\\'], "_")
}

/// The class folders of `dir`, sorted by name, each a folder of its own (see [`Walk`]).
fn class_dirs(walk: &mut Walk, dir: &Path) -> Result<Vec<(String, PathBuf)>, FolderError> {
    walk.folders_in(dir)?
        .into_iter()
        .map(|p| match p.file_name().and_then(|n| n.to_str()) {
            Some(name) => Ok((name.to_string(), p.clone())),
            None => Err(FolderError::NotUtf8(p)),
        })
        .collect()
}

/// The images of each class of one split folder: `(class, files)`.
type ClassFiles = Vec<(String, Vec<PathBuf>)>;

fn split_folder(walk: &mut Walk, dir: &Path) -> Result<ClassFiles, FolderError> {
    let classes = class_dirs(walk, dir)?;
    if classes.len() < 2 {
        return Err(FolderError::TooFewClasses {
            dir: dir.to_path_buf(),
            found: classes.into_iter().map(|c| c.0).collect(),
        });
    }
    let mut found = Vec::new();
    for (name, class_dir) in classes {
        let before = walk.not_images;
        let files = walk.images_below(&class_dir, true)?;
        if files.is_empty() {
            return Err(FolderError::EmptyClass {
                dir: class_dir,
                not_images: walk.not_images - before,
            });
        }
        found.push((name, files));
    }
    Ok(found)
}

/// Threads that read headers: the work waits on the disk far more than on the CPU (a
/// 100,000-file tree whose pages were not cached: 4.9 s on 2 threads, 1.5 s on 16).
const HEADER_THREADS: usize = 16;

/// Reads every file's header in parallel; returns the good files with their headers and the
/// bad ones, each list in path order.
fn check_headers(files: Vec<(PathBuf, usize)>) -> (Vec<(PathBuf, usize, Header)>, Vec<ImageError>) {
    let read = || -> Vec<_> {
        files
            .into_par_iter()
            .map(|(path, label)| images::read_header(&path).map(|h| (path, label, h)))
            .collect()
    };
    let results = match rayon::ThreadPoolBuilder::new()
        .num_threads(HEADER_THREADS)
        .build()
    {
        Ok(pool) => pool.install(read),
        Err(_) => read(),
    };
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for result in results {
        match result {
            Ok(file) => good.push(file),
            Err(err) => bad.push(err),
        }
    }
    (good, bad)
}

/// The number of a class's `n` images held out: `fraction` of them, rounded, but at least one
/// when the fraction is above 0 and at most all but one.
fn held_out(n: usize, fraction: f64) -> usize {
    let wanted = (n as f64 * fraction).round() as usize;
    match fraction > 0.0 && n >= 2 {
        true => wanted.clamp(1, n - 1),
        false => 0,
    }
}

impl ImageFolder {
    /// Scans `root`: finds its layout and classes, lists and checks every image the scan's
    /// purpose reads.
    pub fn scan(root: &Path, options: ScanOptions) -> Result<Self, FolderError> {
        match fs::metadata(root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(FolderError::NotAFolder(root.to_path_buf())),
            Err(_) => return Err(FolderError::NotFound(root.to_path_buf())),
        }
        let mut walk = Walk::new(root);
        let (train_dir, val_dir) = (root.join("train"), root.join("val"));
        let (layout, train, val) = if train_dir.is_dir() && val_dir.is_dir() {
            let val = split_folder(&mut walk, &val_dir)?;
            let train = match options.purpose {
                Purpose::Training => split_folder(&mut walk, &train_dir)?,
                // Evaluation reads val/ only; train/ is not even listed.
                Purpose::Evaluation => val.iter().map(|(n, _)| (n.clone(), vec![])).collect(),
            };
            let names = |c: &[(String, Vec<PathBuf>)]| -> Vec<String> {
                c.iter().map(|(n, _)| n.clone()).collect()
            };
            if names(&train) != names(&val) {
                return Err(FolderError::ClassMismatch {
                    train_dir,
                    val_dir,
                    train: names(&train),
                    val: names(&val),
                });
            }
            (Layout::TrainVal, train, val)
        } else {
            let all = split_folder(&mut walk, root)?;
            let layout = Layout::HeldOut {
                fraction: options.val_fraction,
                seed: options.seed,
            };
            let (train, val) = hold_out(all, options.val_fraction, options.seed);
            (layout, train, val)
        };
        let classes: Vec<String> = train.iter().map(|(n, _)| n.clone()).collect();
        let (train, val, skipped, all_grey) = Self::checked(root, train, val, options.skip_bad)?;
        Ok(Self {
            root: root.to_path_buf(),
            layout,
            classes,
            train,
            val,
            skipped,
            not_images: walk.not_images,
            passed_over: walk.passed_over,
            all_grey,
        })
    }

    /// Checks every image's header; with `skip_bad`, leaves the unreadable ones out.
    #[allow(clippy::type_complexity)]
    fn checked(
        root: &Path,
        train: Vec<(String, Vec<PathBuf>)>,
        val: Vec<(String, Vec<PathBuf>)>,
        skip_bad: bool,
    ) -> Result<(Vec<LabelledFile>, Vec<LabelledFile>, Vec<SkippedFile>, bool), FolderError> {
        let labelled = |classes: Vec<(String, Vec<PathBuf>)>| -> Vec<(PathBuf, usize)> {
            classes
                .into_iter()
                .enumerate()
                .flat_map(|(label, (_, files))| files.into_iter().map(move |f| (f, label)))
                .collect()
        };
        let (train, mut bad) = check_headers(labelled(train));
        let (val, bad_val) = check_headers(labelled(val));
        bad.extend(bad_val);
        bad.sort_by(|a, b| a.path().cmp(b.path()));
        if let (Some(first), false) = (bad.first(), skip_bad) {
            return Err(FolderError::BadImages {
                dir: root.to_path_buf(),
                count: bad.len(),
                first: first.clone(),
            });
        }
        let all_grey = train.iter().chain(&val).all(|(_, _, h)| h.grey);
        let relative = |files: Vec<(PathBuf, usize, Header)>| -> Vec<LabelledFile> {
            files
                .into_iter()
                .map(|(path, label, _)| LabelledFile {
                    path: path.strip_prefix(root).unwrap_or(&path).to_path_buf(),
                    label,
                })
                .collect()
        };
        let skipped = bad
            .into_iter()
            .map(|e| SkippedFile {
                path: e.path().to_path_buf(),
                reason: e.to_string(),
            })
            .collect();
        Ok((relative(train), relative(val), skipped, all_grey))
    }

    /// One line on what the scan found and what it left out, e.g. `photos: 3 classes, 900
    /// training and 100 validation images; left out: 2 unreadable images, 1 FIFO, socket or
    /// device`.
    pub fn describe(&self) -> String {
        let mut left_out = Vec::new();
        if !self.skipped.is_empty() {
            left_out.push(format!("{} unreadable images", self.skipped.len()));
        }
        if self.not_images > 0 {
            left_out.push(format!("{} files that are not images", self.not_images));
        }
        if self.passed_over.total() > 0 {
            left_out.push(self.passed_over.describe());
        }
        let left_out = match left_out.is_empty() {
            true => String::new(),
            false => format!("; left out: {}", left_out.join(", ")),
        };
        format!(
            "{}: {} classes, {} training and {} validation images{left_out}",
            Shown(&self.root),
            self.classes.len(),
            self.train.len(),
            self.val.len()
        )
    }

    /// Images of the given split.
    pub fn files(&self, val: bool) -> &[LabelledFile] {
        match val {
            true => &self.val,
            false => &self.train,
        }
    }

    /// The images to evaluate a run on, labelled with the run's `classes` (its label order),
    /// each folder matched to the class whose [`class_folder_name`] it is: the `val/` split of a
    /// folder that has one, else every image. The folder must hold exactly the run's classes.
    pub fn for_run(&self, classes: &[String]) -> Result<Vec<LabelledFile>, FolderError> {
        let other = || FolderError::OtherClasses {
            dir: self.root.clone(),
            folder: self.classes.clone(),
            run: classes.to_vec(),
        };
        if self.classes.len() != classes.len() {
            return Err(other());
        }
        let index: Vec<usize> = self
            .classes
            .iter()
            .map(|folder| {
                classes
                    .iter()
                    .position(|c| class_folder_name(c) == *folder)
                    .ok_or_else(other)
            })
            .collect::<Result<_, _>>()?;
        let files = match self.layout {
            Layout::TrainVal => &self.val,
            Layout::HeldOut { .. } => &self.train,
        };
        Ok(files
            .iter()
            .map(|f| LabelledFile {
                path: f.path.clone(),
                label: index[f.label],
            })
            .collect())
    }
}

/// Splits each class's files (in path order) into training and held-out ones by a seeded draw;
/// the same files and seed always give the same split.
#[allow(clippy::type_complexity)]
fn hold_out(
    classes: Vec<(String, Vec<PathBuf>)>,
    fraction: f64,
    seed: u64,
) -> (Vec<(String, Vec<PathBuf>)>, Vec<(String, Vec<PathBuf>)>) {
    let mut rng = StdRng::seed_from_u64(seed);
    classes
        .into_iter()
        .map(|(name, mut files)| {
            files.shuffle(&mut rng);
            let val = files.split_off(files.len() - held_out(files.len(), fraction));
            let sorted = |mut f: Vec<PathBuf>| {
                f.sort();
                f
            };
            ((name.clone(), sorted(files)), (name, sorted(val)))
        })
        .unzip()
}

#[cfg(test)]
mod tests;
