//! Reading the IDX files of (Fashion-)MNIST, gzip-compressed or raw, with every field checked.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Why an IDX file could not be used; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained again).
        cause: std::io::Error,
    },
    /// A `.gz` file that does not decompress.
    #[error(
        "{path} is not valid gzip ({cause}); re-download or reinstall the data (apt-get install --reinstall dataset-fashion-mnist)"
    )]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained again).
        cause: std::io::Error,
    },
    /// The first four bytes are not the expected magic number.
    #[error(
        "{path} has magic number 0x{found:08x}, expected 0x{expected:08x} ({what}); is this the right file?"
    )]
    Magic {
        /// The file.
        path: PathBuf,
        /// The magic number read.
        found: u32,
        /// The magic number expected.
        expected: u32,
        /// What the expected magic number means.
        what: &'static str,
    },
    /// The header or the payload is shorter than declared.
    #[error(
        "{path} is truncated: the header declares {expected} bytes, the file holds {found}; re-download or reinstall it"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header declares (header included).
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// More bytes than the header declares.
    #[error("{path} has {extra} bytes after the declared data; the file is corrupt")]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Number of extra bytes.
        extra: usize,
    },
    /// Images that are not 28x28.
    #[error("{path} holds {rows}x{cols} images, expected 28x28 Fashion-MNIST images")]
    Dimensions {
        /// The file.
        path: PathBuf,
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
    },
    /// A label outside `0..10`.
    #[error("{path}: label {label} at index {index} is outside 0..10")]
    Label {
        /// The file.
        path: PathBuf,
        /// Position of the label.
        index: usize,
        /// The label read.
        label: u8,
    },
    /// Image and label files of one split disagree in length.
    #[error("{images} holds {image_count} images but {labels} holds {label_count} labels")]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// Images it holds.
        image_count: usize,
        /// The label file.
        labels: PathBuf,
        /// Labels it holds.
        label_count: usize,
    },
}

/// Side of a Fashion-MNIST image.
pub const SIDE: usize = 28;
/// Pixels per Fashion-MNIST image.
pub const PIXELS: usize = SIDE * SIDE;
/// Number of classes.
pub const NUM_CLASSES: usize = 10;

/// Reads a whole file, decompressing it when its name ends in `.gz`.
fn read_bytes(path: &Path) -> Result<Vec<u8>, IdxError> {
    let raw = fs::read(path).map_err(|cause| IdxError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    if path.extension().is_some_and(|ext| ext == "gz") {
        let mut out = Vec::with_capacity(raw.len() * 4);
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|cause| IdxError::Gzip {
                path: path.to_path_buf(),
                cause,
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Splits an IDX payload into its dimensions and data after checking magic and length.
fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    what: &'static str,
) -> Result<(Vec<usize>, &'a [u8]), IdxError> {
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    let truncated = |expected| IdxError::Truncated {
        path: path.to_path_buf(),
        expected,
        found: bytes.len(),
    };
    let word = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    if bytes.len() < 4 {
        return Err(truncated(header));
    }
    if word(0) != magic {
        return Err(IdxError::Magic {
            path: path.to_path_buf(),
            found: word(0),
            expected: magic,
            what,
        });
    }
    if bytes.len() < header {
        return Err(truncated(header));
    }
    let dims: Vec<usize> = (1..=ndim).map(|i| word(i) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_add(header))
        .unwrap_or(usize::MAX);
    if bytes.len() < expected {
        return Err(truncated(expected));
    }
    if bytes.len() > expected {
        return Err(IdxError::TrailingBytes {
            path: path.to_path_buf(),
            extra: bytes.len() - expected,
        });
    }
    Ok((dims, &bytes[header..]))
}

/// Parses the bytes of an image file: `count` images of 28x28 pixels, row-major.
pub fn parse_images(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, IdxError> {
    let (dims, data) = parse(
        path,
        bytes,
        IMAGES_MAGIC,
        "unsigned-byte images, 3 dimensions",
    )?;
    let (rows, cols) = (dims[1], dims[2]);
    if (rows, cols) != (SIDE, SIDE) {
        return Err(IdxError::Dimensions {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    Ok(data.to_vec())
}

/// Parses the bytes of a label file, checking that every label names one of the ten classes.
pub fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, IdxError> {
    let (_, data) = parse(
        path,
        bytes,
        LABELS_MAGIC,
        "unsigned-byte labels, 1 dimension",
    )?;
    if let Some(index) = data.iter().position(|&l| l as usize >= NUM_CLASSES) {
        return Err(IdxError::Label {
            path: path.to_path_buf(),
            index,
            label: data[index],
        });
    }
    Ok(data.to_vec())
}

/// Reads an image file (`.gz` or raw).
pub fn read_images(path: &Path) -> Result<Vec<u8>, IdxError> {
    parse_images(path, &read_bytes(path)?)
}

/// Reads a label file (`.gz` or raw).
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxError> {
    parse_labels(path, &read_bytes(path)?)
}

/// Serialises images (28x28 each) as an IDX file body; the inverse of [`parse_images`].
pub fn encode_images(pixels: &[u8]) -> Vec<u8> {
    let count = (pixels.len() / PIXELS) as u32;
    let mut out = Vec::with_capacity(16 + pixels.len());
    for word in [IMAGES_MAGIC, count, SIDE as u32, SIDE as u32] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// Serialises labels as an IDX file body; the inverse of [`parse_labels`].
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("x-idx3-ubyte")
    }

    #[test]
    fn images_round_trip() {
        let pixels: Vec<u8> = (0..2 * PIXELS).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            parse_images(path(), &encode_images(&pixels)).unwrap(),
            pixels
        );
    }

    #[test]
    fn labels_round_trip_and_reject_out_of_range() {
        let labels = vec![0, 9, 3];
        assert_eq!(
            parse_labels(path(), &encode_labels(&labels)).unwrap(),
            labels
        );
        let err = parse_labels(path(), &encode_labels(&[1, 12])).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::Label {
                    index: 1,
                    label: 12,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn wrong_magic_is_named() {
        let err = parse_labels(path(), &encode_images(&[0; PIXELS])).unwrap_err();
        assert!(
            matches!(
                err,
                IdxError::Magic {
                    found: IMAGES_MAGIC,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("x-idx3-ubyte"));
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let bytes = encode_images(&[7; 2 * PIXELS]);
        for len in [0, 3, 4, 10, 15, 16, 17, bytes.len() - 1] {
            let err = parse_images(path(), &bytes[..len]).unwrap_err();
            assert!(
                matches!(err, IdxError::Truncated { .. }),
                "len {len}: {err}"
            );
        }
    }

    #[test]
    fn trailing_bytes_and_wrong_dimensions_are_errors() {
        let mut bytes = encode_labels(&[1, 2]);
        bytes.push(0);
        assert!(matches!(
            parse_labels(path(), &bytes),
            Err(IdxError::TrailingBytes { extra: 1, .. })
        ));
        let mut bytes = encode_images(&[0; PIXELS]);
        bytes[8..12].copy_from_slice(&14u32.to_be_bytes());
        bytes[12..16].copy_from_slice(&56u32.to_be_bytes());
        assert!(matches!(
            parse_images(path(), &bytes),
            Err(IdxError::Dimensions {
                rows: 14,
                cols: 56,
                ..
            })
        ));
    }

    #[test]
    fn huge_declared_counts_do_not_overflow() {
        let mut bytes = encode_images(&[]);
        bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            parse_images(path(), &bytes),
            Err(IdxError::Truncated { .. })
        ));
    }
}
