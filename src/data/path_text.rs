//! File paths as text that maps back to the file, whatever bytes its name holds.
//!
//! A Linux file name is any bytes but `/` and NUL, so a path need not be UTF-8, while JSON,
//! CSV and the terminal want text. `Path::display` puts U+FFFD where the bytes are not UTF-8,
//! which loses the name. Here a path's UTF-8 runs are written as they are, every byte that is
//! not part of one as `\xNN`, and a backslash as `\\`; [`decode`] reverses it exactly. A name
//! that is UTF-8 and has no backslash is written unchanged.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// `path` as text: UTF-8 as it is, other bytes as `\xNN`, `\` as `\\`.
pub fn encode(path: &Path) -> String {
    let mut text = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                c => text.push(c),
            }
        }
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02X}"));
        }
    }
    text
}

/// The path [`encode`] wrote as `text`. A backslash that starts neither escape stands for
/// itself, so text written before escapes existed reads as it was meant.
pub fn decode(text: &str) -> PathBuf {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1)) {
            (b'\\', Some(b'\\')) => Some((b'\\', 2)),
            (b'\\', Some(b'x')) => text
                .get(i + 2..i + 4)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .map(|byte| (byte, 4)),
            _ => None,
        };
        match escaped {
            Some((byte, len)) => {
                out.push(byte);
                i += len;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Shows a path in messages as [`encode`] writes it, so that the name can be found again.
pub struct Shown<'a>(pub &'a Path);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode(self.0))
    }
}

/// `#[serde(with = "path_text")]` for a `PathBuf` field: written as [`encode`] text.
pub fn serialize<S: serde::Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&encode(path))
}

/// `#[serde(with = "path_text")]` for a `PathBuf` field: read as [`decode`] does.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    let text: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(deserializer)?;
    Ok(decode(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(bytes: &[u8]) -> PathBuf {
        PathBuf::from(OsString::from_vec(bytes.to_vec()))
    }

    #[test]
    fn utf8_names_are_unchanged_and_other_bytes_are_escaped() {
        assert_eq!(encode(Path::new("cats/Größe 1.png")), "cats/Größe 1.png");
        let latin1 = raw(b"cats/caf\xe9.png");
        assert_eq!(encode(&latin1), "cats/caf\\xE9.png");
        assert_eq!(encode(Path::new(r"a\b.png")), r"a\\b.png");
        assert_eq!(Shown(&latin1).to_string(), "cats/caf\\xE9.png");
    }

    #[test]
    fn every_byte_sequence_round_trips() {
        let names: Vec<Vec<u8>> = vec![
            b"plain.png".to_vec(),
            b"\xff\xfe\x80".to_vec(),
            b"back\\slash\\x41".to_vec(),
            b"\\xZZ".to_vec(),
            "ü\u{1F600}".as_bytes().to_vec(),
            b"\xe2\x82".to_vec(), // a multi-byte character cut short
            (1..=255u8).filter(|&b| b != b'/').collect(),
        ];
        for name in names {
            let path = raw(&name);
            assert_eq!(decode(&encode(&path)), path, "{name:?}");
        }
        // As JSON too.
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Row {
            #[serde(with = "super")]
            path: PathBuf,
        }
        let path = raw(b"dir/\xc3(x.png");
        let json = serde_json::to_string(&Row { path: path.clone() }).unwrap();
        assert_eq!(json, r#"{"path":"dir/\\xC3(x.png"}"#);
        let back: Row = serde_json::from_str(&json).unwrap();
        assert_eq!(back.path, path);
    }

    #[test]
    fn text_written_before_escapes_reads_as_it_was() {
        assert_eq!(decode(r"C:\data\cat.png"), Path::new(r"C:\data\cat.png"));
        assert_eq!(decode("end\\"), Path::new("end\\"));
    }
}
