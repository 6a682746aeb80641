//! A walk through a tree of image files that never opens anything but a regular file and never
//! enters a folder twice: each entry is judged by its type (`stat`, which does not block)
//! before anything is opened, so a FIFO, socket or device is passed over; a link is followed to
//! a file, or to a folder outside the tree, never back into it or above it, so there is no loop
//! and no image is read again under another label. What it passes over is counted.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::path_text::Shown;

/// A folder that cannot be listed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot list {}: {reason}", Shown(dir))]
pub struct Unlistable {
    /// The folder.
    pub dir: PathBuf,
    /// The system's reason.
    pub reason: String,
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

fn list(dir: &Path) -> Result<Vec<PathBuf>, Unlistable> {
    let entries = fs::read_dir(dir).map_err(|e| Unlistable {
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
pub enum Entry {
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
pub struct Walk {
    /// The tree's own folder, resolved: links into it or above it are not followed.
    tree: PathBuf,
    entered: HashSet<(u64, u64)>,
    /// What it passed over so far.
    pub passed_over: PassedOver,
    /// Regular files whose names are not images', so far.
    pub not_images: usize,
}

impl Walk {
    pub fn new(tree: &Path) -> Self {
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
    pub fn folders_in(&mut self, dir: &Path) -> Result<Vec<PathBuf>, Unlistable> {
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
    pub fn images_below(
        &mut self,
        dir: &Path,
        recursive: bool,
    ) -> Result<Vec<PathBuf>, Unlistable> {
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

/// The images in `dir`, sorted: those directly in it, or with `recursive` those in its nested
/// folders too (hidden ones left out); and what was passed over. Only regular files are taken,
/// and a link is followed only to a file or to a folder outside `dir`.
pub fn images_in(dir: &Path, recursive: bool) -> Result<(Vec<PathBuf>, PassedOver), Unlistable> {
    let mut walk = Walk::new(dir);
    let images = walk.images_below(dir, recursive)?;
    Ok((images, walk.passed_over))
}
