//! Which weight file format a file holds, told from its first bytes rather than its name, and
//! the safetensors metadata this crate writes: the network's architecture, input side, channels
//! and classes.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The metadata key of the network's architecture (`d2l` or `imagenet`; the keys say it too).
pub const ARCH_KEY: &str = "alexnet.arch";
/// The metadata key of the input side an exported network was trained at.
pub const IMAGE_SIZE_KEY: &str = "alexnet.image_size";
/// The metadata key of its input channels.
pub const CHANNELS_KEY: &str = "alexnet.in_channels";
/// The metadata key of its class names (a JSON list, in label order).
pub const CLASSES_KEY: &str = "alexnet.classes";

/// What `alexnet export` recorded about a network's input and output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportedInput {
    /// The input side.
    pub image_size: Option<usize>,
    /// Input channels.
    pub in_channels: Option<usize>,
    /// Class names, in label order.
    pub classes: Option<Vec<String>>,
}

/// A file format burn-store reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// What `torch.save` writes: a zip archive (PyTorch 1.6+), a legacy pickle or a tar.
    Pytorch,
    /// A safetensors file.
    Safetensors,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pytorch => "PyTorch (torch.save)",
            Self::Safetensors => "safetensors",
        })
    }
}

/// Enough bytes to see a tar header's "ustar" magic at offset 257.
const SNIFF_LEN: usize = 512;

impl Format {
    /// The format of `path`, or one line saying what it is not and how to make one.
    pub fn sniff(path: &Path) -> Result<Self> {
        let mut head = Vec::with_capacity(SNIFF_LEN);
        File::open(path)
            .and_then(|f| f.take(SNIFF_LEN as u64).read_to_end(&mut head))
            .with_context(|| format!("cannot read {}", path.display()))?;
        let len = path.metadata().map_or(0, |m| m.len());
        match Self::of_bytes(&head, len) {
            Some(format) => Ok(format),
            None => bail!(
                "{} is neither a PyTorch file nor safetensors; save d2l's weights with \
                 torch.save(net.state_dict(), \"alexnet.pt\") or \
                 safetensors.torch.save_file(net.state_dict(), \"alexnet.safetensors\")",
                path.display()
            ),
        }
    }

    fn of_bytes(head: &[u8], file_len: u64) -> Option<Self> {
        // safetensors first: a little-endian u64 header length that fits the file, then the JSON
        // header. Its length bytes can look like a pickle's start (640 is 0x80 0x02); a pickle's
        // or a zip's first eight bytes never make a length that fits.
        let header_len = head
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes")));
        let fits = header_len
            .and_then(|n| n.checked_add(8))
            .is_some_and(|end| end <= file_len);
        if fits && head.get(8) == Some(&b'{') {
            return Some(Self::Safetensors);
        }
        let zip = head.starts_with(b"PK\x03\x04");
        // Pickle protocol 2-5 starts with PROTO (0x80) and the protocol number.
        let pickle = head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]);
        let tar = head.get(257..262) == Some(b"ustar");
        (zip || pickle || tar).then_some(Self::Pytorch)
    }
}

/// What a safetensors file written by `alexnet export` records (nothing for other files).
pub fn exported_input(path: &Path) -> ExportedInput {
    let Some(header) = safetensors_header(path) else {
        return ExportedInput::default();
    };
    let meta = &header["__metadata__"];
    let number = |key: &str| meta[key].as_str()?.parse().ok();
    ExportedInput {
        image_size: number(IMAGE_SIZE_KEY),
        in_channels: number(CHANNELS_KEY),
        classes: meta[CLASSES_KEY]
            .as_str()
            .and_then(|list| serde_json::from_str(list).ok()),
    }
}

/// The JSON header of a safetensors file.
fn safetensors_header(path: &Path) -> Option<serde_json::Value> {
    let mut file = File::open(path).ok()?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).ok()?;
    // Headers are small; a huge length means a foreign or damaged file, not ours.
    let len = usize::try_from(u64::from_le_bytes(len))
        .ok()
        .filter(|&n| n < 1 << 24)?;
    let mut header = vec![0u8; len];
    file.read_exact(&mut header).ok()?;
    serde_json::from_slice(&header).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_their_first_bytes() {
        assert_eq!(
            Format::of_bytes(b"PK\x03\x04rest", 100),
            Some(Format::Pytorch)
        );
        assert_eq!(
            Format::of_bytes(b"\x80\x02}q\x00", 100),
            Some(Format::Pytorch)
        );
        let mut safetensors = 20u64.to_le_bytes().to_vec();
        safetensors.extend_from_slice(b"{\"a\":1}");
        assert_eq!(
            Format::of_bytes(&safetensors, 100),
            Some(Format::Safetensors)
        );
        // A header longer than the file is not safetensors.
        assert_eq!(Format::of_bytes(&safetensors, 10), None);
        // A header of 640 bytes starts like a pickle (0x80 0x02).
        let mut long = 640u64.to_le_bytes().to_vec();
        long.push(b'{');
        assert_eq!(Format::of_bytes(&long, 1000), Some(Format::Safetensors));
        assert_eq!(Format::of_bytes(b"{\"model\": 1}", 100), None);
        assert_eq!(Format::of_bytes(b"", 0), None);
        assert_eq!(Format::of_bytes(b"\x80\x09", 100), None);
    }
}
