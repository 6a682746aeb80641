//! A folder of labelled images in torchvision's `ImageFolder` layout: one subfolder per class,
//! its name the class's name, classes in sorted order. Either `DIR/train/<class>/…` and
//! `DIR/val/<class>/…`, or `DIR/<class>/…` split per class by a seeded fraction. Scanning
//! reads every image's header only, so that a bad file is found before training starts; the
//! pixels are decoded batch by batch while training runs.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use std::os::unix::fs::MetadataExt;

use super::images::{self, Header, ImageError};
use super::path_text::Shown;

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
    #[error("cannot list {}: {reason}", Shown(dir))]
    Unlistable {
        /// The directory.
        dir: PathBuf,
        /// The system's reason.
        reason: String,
    },
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

/// Whether a file or folder is hidden (a dot file), which scanning passes over.
fn hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
}

/// Whether this build decodes the format the file's name says.
fn named_as_image(path: &Path) -> bool {
    image::ImageFormat::from_path(path).is_ok_and(|f| f.reading_enabled())
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, FolderError> {
    let entries = fs::read_dir(dir).map_err(|e| FolderError::Unlistable {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| !hidden(p))
        .collect();
    paths.sort();
    Ok(paths)
}

/// What a folder scan found at one path, judged by the file's type before anything is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// A folder to look into: a real one, or a link to a folder outside the tree.
    Folder,
    /// A regular file (or a link to one) named as an image.
    Image,
    /// A regular file whose name is not an image's.
    NotImage,
    /// A FIFO, socket or device: opening one can block for ever, so it is never opened.
    Special,
    /// A link that leads nowhere (a missing target, or a loop of links).
    Dangling,
    /// A link to a folder already in the tree (a loop, or another class's folder), or a folder
    /// met twice: following it would read images again under another label.
    Repeated,
}

/// Files and folders a scan passed over, by why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassedOver {
    /// FIFOs, sockets and devices.
    pub special: usize,
    /// Links that lead nowhere.
    pub dangling: usize,
    /// Links back into the tree (loops, other classes' folders), not followed.
    pub repeated: usize,
}

impl PassedOver {
    /// How many in all.
    pub fn total(&self) -> usize {
        self.special + self.dangling + self.repeated
    }

    /// In words, e.g. `1 FIFO, socket or device, 2 links back into the folder`; empty when none.
    pub fn describe(&self) -> String {
        [
            (
                self.special,
                "FIFO, socket or device",
                "FIFOs, sockets or devices",
            ),
            (
                self.dangling,
                "link that leads nowhere",
                "links that lead nowhere",
            ),
            (
                self.repeated,
                "link back into the folder",
                "links back into the folder",
            ),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// One scan of a tree: the folders it has entered (by device and inode), so that no folder is
/// read twice, and what it passed over.
struct Walk {
    /// The tree's own folder, resolved: links into it or above it are not followed.
    tree: PathBuf,
    entered: HashSet<(u64, u64)>,
    passed_over: PassedOver,
    not_images: usize,
}

impl Walk {
    fn new(tree: &Path) -> Self {
        let mut walk = Self {
            tree: fs::canonicalize(tree).unwrap_or_else(|_| tree.to_path_buf()),
            entered: HashSet::new(),
            passed_over: PassedOver::default(),
            not_images: 0,
        };
        if let Ok(meta) = fs::metadata(tree) {
            walk.entered.insert((meta.dev(), meta.ino()));
        }
        walk
    }

    /// What `path` is, from its type (links resolved by `stat`, which never blocks); a folder
    /// is marked entered.
    fn entry(&mut self, path: &Path) -> Entry {
        let Ok(own) = fs::symlink_metadata(path) else {
            return Entry::Dangling;
        };
        let link = own.file_type().is_symlink();
        let meta = match link {
            true => match fs::metadata(path) {
                Ok(meta) => meta,
                Err(_) => return Entry::Dangling,
            },
            false => own,
        };
        if meta.is_dir() {
            let new = !link || self.outside_tree(path);
            return match new && self.entered.insert((meta.dev(), meta.ino())) {
                true => Entry::Folder,
                false => Entry::Repeated,
            };
        }
        if !meta.is_file() {
            return Entry::Special;
        }
        match named_as_image(path) {
            true => Entry::Image,
            false => Entry::NotImage,
        }
    }

    /// Whether the folder a link leads to is neither inside the tree nor above it.
    fn outside_tree(&self, link: &Path) -> bool {
        fs::canonicalize(link)
            .is_ok_and(|target| !target.starts_with(&self.tree) && !self.tree.starts_with(&target))
    }

    /// Counts what is neither a folder nor an image.
    fn pass_over(&mut self, entry: Entry) {
        match entry {
            Entry::Folder | Entry::Image => {}
            Entry::NotImage => self.not_images += 1,
            Entry::Special => self.passed_over.special += 1,
            Entry::Dangling => self.passed_over.dangling += 1,
            Entry::Repeated => self.passed_over.repeated += 1,
        }
    }

    /// The folders directly in `dir`, counting what else is there; its images are left to
    /// [`Walk::images_below`].
    fn folders_in(&mut self, dir: &Path) -> Result<Vec<PathBuf>, FolderError> {
        let mut folders = Vec::new();
        for path in list(dir)? {
            match self.entry(&path) {
                Entry::Folder => folders.push(path),
                Entry::Image | Entry::NotImage => {}
                other => self.pass_over(other),
            }
        }
        Ok(folders)
    }

    /// The images directly in `dir`, or with `recursive` in its nested folders too, sorted.
    fn images_below(&mut self, dir: &Path, recursive: bool) -> Result<Vec<PathBuf>, FolderError> {
        let mut images = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let mut folders = Vec::new();
            for path in list(&dir)? {
                match self.entry(&path) {
                    Entry::Image => images.push(path),
                    Entry::Folder if recursive => folders.push(path),
                    Entry::Folder => {}
                    other => self.pass_over(other),
                }
            }
            stack.extend(folders.into_iter().rev());
        }
        images.sort();
        Ok(images)
    }
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

/// The images in `dir`, sorted: those directly in it, or with `recursive` those in its nested
/// folders too (hidden ones left out); and what was passed over. Only regular files are taken,
/// and a link is followed only to a file or to a folder outside `dir`.
pub fn images_in(dir: &Path, recursive: bool) -> Result<(Vec<PathBuf>, PassedOver), FolderError> {
    let mut walk = Walk::new(dir);
    let images = walk.images_below(dir, recursive)?;
    Ok((images, walk.passed_over))
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
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    fn grey(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        GrayImage::from_pixel(6, 4, Luma([50])).save(path).unwrap();
    }

    fn options() -> ScanOptions {
        ScanOptions {
            val_fraction: 0.25,
            seed: 7,
            skip_bad: false,
            purpose: Purpose::Training,
        }
    }

    fn mkfifo(path: &Path) {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    }

    #[test]
    fn fifos_sockets_loops_and_links_into_the_tree_are_passed_over_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for i in 0..3 {
            grey(&root.join(format!("Bag/{i}.png")));
            grey(&root.join(format!("Coat/{i}.png")));
        }
        // Opening this FIFO would block for ever; it is never opened.
        mkfifo(&root.join("Bag/x.png"));
        let _socket = std::os::unix::net::UnixListener::bind(root.join("Coat/s.png")).unwrap();
        // A link up to the folder itself and one into another class: following either would
        // read Coat's images again, labelled Bag.
        std::os::unix::fs::symlink("..", root.join("Bag/loop")).unwrap();
        std::os::unix::fs::symlink("../Coat", root.join("Bag/coats")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("Bag/above")).unwrap();
        std::os::unix::fs::symlink("nowhere.png", root.join("Coat/gone.png")).unwrap();
        std::os::unix::fs::symlink("self.png", root.join("Coat/self.png")).unwrap();
        // A link to one image file is an image of its class.
        std::os::unix::fs::symlink("../Coat/0.png", root.join("Bag/linked.png")).unwrap();
        let split = ImageFolder::scan(
            root,
            ScanOptions {
                val_fraction: 0.01,
                ..options()
            },
        )
        .unwrap();
        let labels: Vec<usize> = split
            .train
            .iter()
            .chain(&split.val)
            .map(|f| f.label)
            .collect();
        assert_eq!(
            labels.iter().filter(|&&l| l == 0).count(),
            4,
            "3 Bag images and the link"
        );
        assert_eq!(labels.iter().filter(|&&l| l == 1).count(), 3);
        assert_eq!(
            split.passed_over,
            PassedOver {
                special: 2,
                dangling: 2,
                repeated: 3
            }
        );
        assert_eq!(
            split.passed_over.describe(),
            "2 FIFOs, sockets or devices, 2 links that lead nowhere, 3 links back into the folder"
        );
        // Given Bag alone, Coat lies outside it: its link is followed, once.
        let (images, passed_over) = images_in(&root.join("Bag"), true).unwrap();
        assert_eq!(images.len(), 7, "{images:?}");
        assert_eq!(
            (passed_over.special, passed_over.repeated),
            (2, 2),
            "the FIFO, and the socket in Coat"
        );
    }

    #[test]
    fn names_that_are_not_utf8_are_kept_exactly_through_images_json() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // A Latin-1 name (not UTF-8), and a UTF-8 name that spells its escape.
        let latin1 = std::ffi::OsStr::from_bytes(b"a/caf\xe9.png");
        let spelled = Path::new(r"a/caf\xE9.png");
        grey(&root.join(latin1));
        grey(&root.join(spelled));
        grey(&root.join("b/1.png"));
        grey(&root.join("b/2.png"));
        let split = ImageFolder::scan(root, options()).unwrap();
        let json = serde_json::to_string(&split).unwrap();
        assert!(json.contains(r#""a/caf\\xE9.png""#), "{json}");
        assert!(json.contains(r#""a/caf\\\\xE9.png""#), "{json}");
        let back: ImageFolder = serde_json::from_str(&json).unwrap();
        assert_eq!(back, split);
        let files: Vec<&Path> = back
            .train
            .iter()
            .chain(&back.val)
            .map(|f| f.path.as_path())
            .collect();
        assert!(
            files.contains(&Path::new(latin1)) && files.contains(&spelled),
            "{files:?}"
        );
    }

    #[test]
    fn evaluation_reads_only_val_of_a_train_val_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for class in ["cat", "dog"] {
            grey(&root.join(format!("train/{class}/a.png")));
            grey(&root.join(format!("val/{class}/b.png")));
        }
        fs::write(root.join("train/cat/bad.png"), "not a png").unwrap();
        mkfifo(&root.join("train/dog/pipe.png"));
        assert!(
            ImageFolder::scan(root, options()).is_err(),
            "training reads train/"
        );
        let eval = ScanOptions {
            purpose: Purpose::Evaluation,
            ..options()
        };
        let split = ImageFolder::scan(root, eval).unwrap();
        assert!(split.train.is_empty());
        assert_eq!(
            split.for_run(&["cat".into(), "dog".into()]).unwrap().len(),
            2
        );
        let file = root.join("train/cat/a.png");
        let err = ImageFolder::scan(&file, options()).unwrap_err().to_string();
        assert!(err.contains("a.png is a file, not a folder"), "{err}");
    }

    #[test]
    fn classes_are_sorted_subfolders_and_nested_images_belong_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for i in 0..4 {
            grey(&root.join(format!("zebra/{i}.png")));
            grey(&root.join(format!("ant/deep/er/{i}.png")));
        }
        fs::write(root.join("ant/readme.txt"), "notes").unwrap();
        grey(&root.join("ant/.hidden.png"));
        grey(&root.join(".cache/x.png"));
        // A linked folder is followed, and a link back up is not a loop.
        let elsewhere = tempfile::tempdir().unwrap();
        grey(&elsewhere.path().join("linked.png"));
        std::os::unix::fs::symlink(elsewhere.path(), root.join("zebra/more")).unwrap();
        std::os::unix::fs::symlink(root.join("zebra"), root.join("zebra/loop")).unwrap();
        let split = ImageFolder::scan(root, options()).unwrap();
        assert_eq!(split.classes, ["ant", "zebra"]);
        assert_eq!((split.train.len(), split.val.len()), (7, 2));
        assert!(
            split
                .train
                .iter()
                .chain(&split.val)
                .any(|f| f.path.ends_with("more/linked.png"))
        );
        assert_eq!(split.not_images, 1);
        assert!(split.all_grey);
        assert!(split.val.iter().any(|f| f.label == 0) && split.val.iter().any(|f| f.label == 1));
        let again = ImageFolder::scan(root, options()).unwrap();
        assert_eq!(split, again, "the same folder and seed give the same split");
        let other = ImageFolder::scan(
            root,
            ScanOptions {
                seed: 8,
                ..options()
            },
        )
        .unwrap();
        assert_eq!(other.val.len(), 2);
    }

    #[test]
    fn train_and_val_folders_are_the_splits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for class in ["cat", "dog"] {
            grey(&root.join(format!("train/{class}/a.png")));
            grey(&root.join(format!("train/{class}/b.png")));
            let path = root.join(format!("val/{class}/c.png"));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            RgbImage::from_pixel(3, 3, Rgb([1, 2, 3]))
                .save(&path)
                .unwrap();
        }
        let split = ImageFolder::scan(root, options()).unwrap();
        assert_eq!(split.layout, Layout::TrainVal);
        assert_eq!((split.train.len(), split.val.len()), (4, 2));
        assert_eq!(split.val[1].path, Path::new("val/dog/c.png"));
        assert!(!split.all_grey);
        grey(&root.join("val/eel/d.png"));
        let err = ImageFolder::scan(root, options()).unwrap_err().to_string();
        assert!(
            err.contains("train has cat, dog, val has cat, dog, eel"),
            "{err}"
        );
    }

    #[test]
    fn bad_folders_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let scan = || ImageFolder::scan(root, options()).unwrap_err().to_string();
        assert!(
            ImageFolder::scan(&root.join("nope"), options())
                .unwrap_err()
                .to_string()
                .contains("nope does not exist")
        );
        grey(&root.join("one/a.png"));
        assert!(scan().contains("1 class folder(s) (one); a classifier needs at least 2"));
        fs::create_dir_all(root.join("two")).unwrap();
        fs::write(root.join("two/list.txt"), "x").unwrap();
        assert!(
            scan().contains("two holds no images (1 other files)"),
            "{}",
            scan()
        );
        fs::write(root.join("two/fake.jpg"), "not a jpeg").unwrap();
        grey(&root.join("two/b.png"));
        let err = scan();
        assert!(
            err.contains("1 of the files") && err.contains("fake.jpg"),
            "{err}"
        );
        let skipping = ScanOptions {
            skip_bad: true,
            ..options()
        };
        let split = ImageFolder::scan(root, skipping).unwrap();
        assert_eq!(split.skipped.len(), 1);
        assert!(split.skipped[0].path.ends_with("two/fake.jpg"));
    }

    #[test]
    fn held_out_counts_keep_a_training_image() {
        assert_eq!(held_out(10, 0.1), 1);
        assert_eq!(held_out(100, 0.25), 25);
        assert_eq!(
            held_out(3, 0.1),
            1,
            "at least one when the fraction is above 0"
        );
        assert_eq!(held_out(2, 0.9), 1, "at most all but one");
        assert_eq!(held_out(1, 0.5), 0);
        assert_eq!(held_out(10, 0.0), 0);
    }
}
