//! Image files as network inputs: the header (size and colour, read without decoding the
//! pixels) and the pixels themselves, converted to the model's channels and resized to its
//! side as [`Resize`] says.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use image::{ColorType, DynamicImage, ImageDecoder, ImageReader, Limits};

use alexnet_model::Preprocess;

use super::augment::Augmentation;
use super::path_text::Shown;
use super::resize::Resize;

/// Why an image file cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    /// The file cannot be opened or read.
    #[error("cannot read {}: {reason}", Shown(path))]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// The bytes are not an image the decoders understand, or are cut short.
    #[error("{} is not a readable image ({reason})", Shown(path))]
    NotAnImage {
        /// The file.
        path: PathBuf,
        /// The decoder's reason.
        reason: String,
    },
    /// Decoding would take more memory than the limit.
    #[error(
        "{} is too large to decode ({width}x{height}, over {limit_mib} MiB); shrink it",
        Shown(path)
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The limit it is over, in MiB.
        limit_mib: u64,
    },
    /// Not a regular file: a FIFO, socket or device could block the reader for ever.
    #[error(
        "{} is {kind}, not an image file; remove it or give an image",
        Shown(path)
    )]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead ("a FIFO", "a folder", …).
        kind: &'static str,
    },
}

impl ImageError {
    /// The file concerned.
    pub fn path(&self) -> &Path {
        match self {
            Self::Unreadable { path, .. } | Self::NotAnImage { path, .. } => path,
            Self::TooLarge { path, .. } | Self::NotAFile { path, .. } => path,
        }
    }
}

/// What a file that is not a regular one is, in words.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    match () {
        _ if kind.is_dir() => "a folder",
        _ if kind.is_fifo() => "a FIFO (named pipe)",
        _ if kind.is_socket() => "a socket",
        _ if kind.is_block_device() || kind.is_char_device() => "a device",
        _ => "not a regular file",
    }
}

/// Opens `path` for reading if it is a regular file. It is opened without blocking, so that a
/// FIFO or a device cannot hold the thread, and judged by the handle itself, so that a file
/// swapped for one after a scan is still caught.
pub fn open_regular(path: &Path) -> Result<File, ImageError> {
    use std::os::unix::fs::OpenOptionsExt;
    let unreadable = |e: std::io::Error| ImageError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    match meta.is_file() {
        true => Ok(file),
        false => Err(ImageError::NotAFile {
            path: path.to_path_buf(),
            kind: file_kind(&meta),
        }),
    }
}

/// The most memory one decoded image file may take: the `image` crate's own default limit.
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

/// The most memory one image received as bytes (an HTTP upload) may take: 64 MiB holds a
/// 16-megapixel RGBA photo, and keeps a server's concurrent uploads from exhausting memory.
pub const MAX_UPLOAD_DECODE_BYTES: u64 = 64 << 20;

/// An encoded image: a file, or bytes received (an upload), named for messages.
#[derive(Debug, Clone, Copy)]
pub enum Encoded<'a> {
    /// An image file.
    File(&'a Path),
    /// An image in memory.
    Bytes {
        /// What messages call it ("the uploaded image").
        name: &'a str,
        /// The encoded bytes.
        bytes: &'a [u8],
    },
}

impl Encoded<'_> {
    /// The path or name messages give.
    pub fn name(&self) -> PathBuf {
        match self {
            Self::File(path) => path.to_path_buf(),
            Self::Bytes { name, .. } => PathBuf::from(name),
        }
    }

    /// The most memory its decoded pixels may take.
    fn limit(&self) -> u64 {
        match self {
            Self::File(_) => MAX_DECODE_BYTES,
            Self::Bytes { .. } => MAX_UPLOAD_DECODE_BYTES,
        }
    }

    /// Decodes the image whole, refusing one over its memory limit by its stated size.
    pub fn decode(&self) -> Result<DynamicImage, ImageError> {
        let limit = self.limit();
        match *self {
            Self::File(path) => decode_from(reader(path, Some(limit))?, path, limit),
            Self::Bytes { bytes, .. } => {
                let name = self.name();
                let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
                    .with_guessed_format()
                    .map_err(|e| ImageError::Unreadable {
                        path: name.clone(),
                        reason: e.to_string(),
                    })?;
                reader.limits(limits(Some(limit)));
                decode_from(reader, &name, limit)
            }
        }
    }

    /// Decodes the image, a JPEG at the smallest reduced size whose shorter side is at least
    /// `min_short` (`--jpeg-draft`, training only). Anything else, an image that gains nothing,
    /// or one the reduced decoder cannot read, is decoded whole, so that what is refused and
    /// why stays the whole decoder's word.
    pub fn decode_draft(&self, min_short: usize) -> Result<DynamicImage, ImageError> {
        let reduced = match *self {
            Self::File(path) => {
                // Only a JPEG is read whole, and into memory first: the reduced decoder reads a
                // few bytes at a time, which cost a tenth of its time through a `BufReader`.
                let mut file = open_regular(path)?;
                let mut bytes = vec![0; JPEG_START.len()];
                let jpeg = file.read_exact(&mut bytes).is_ok() && bytes == JPEG_START;
                let read = jpeg.then(|| file.take(self.limit()).read_to_end(&mut bytes));
                read.and_then(Result::ok)
                    .and_then(|_| draft_jpeg(&bytes, min_short, self))
            }
            Self::Bytes { bytes, .. } => draft_jpeg(bytes, min_short, self),
        };
        reduced.map_or_else(|| self.decode(), Ok)
    }
}

/// The bytes every JPEG file starts with (start of image, then a marker).
const JPEG_START: [u8; 3] = [0xFF, 0xD8, 0xFF];

/// The reduced sizes a JPEG decodes at, as divisors, largest first: the IDCT keeps 1, 2 or 4
/// of each 8 x 8 block's 8 x 8 frequencies.
const DRAFT_DIVISORS: [usize; 3] = [8, 4, 2];

/// The largest divisor of a `width x height` JPEG that keeps its shorter side at least
/// `min_short` (Pillow's `draft` takes the same, by whole division), or `None`.
fn draft_divisor((width, height): (usize, usize), min_short: usize) -> Option<usize> {
    DRAFT_DIVISORS
        .into_iter()
        .find(|d| width.min(height) / d >= min_short)
}

/// The JPEG `bytes` at the reduced size [`draft_divisor`] picks, or `None` when it is not a
/// grey or RGB JPEG, gains nothing, states a size over `encoded`'s limit, or fails to decode.
fn draft_jpeg(bytes: &[u8], min_short: usize, encoded: &Encoded) -> Option<DynamicImage> {
    if !bytes.starts_with(&JPEG_START) {
        return None;
    }
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let (width, height) = (info.width as usize, info.height as usize);
    let divisor = draft_divisor((width, height), min_short)?;
    let channels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        _ => return None,
    };
    if (width * height * channels) as u64 > encoded.limit() {
        return None;
    }
    let scaled = (width.div_ceil(divisor), height.div_ceil(divisor));
    let (w, h) = decoder.scale(scaled.0 as u16, scaled.1 as u16).ok()?;
    let pixels = decoder.decode().ok()?;
    match channels {
        1 => image::GrayImage::from_raw(w.into(), h.into(), pixels).map(DynamicImage::from),
        _ => image::RgbImage::from_raw(w.into(), h.into(), pixels).map(DynamicImage::from),
    }
}

/// Decoder limits that allocate at most `max_alloc` bytes.
fn limits(max_alloc: Option<u64>) -> Limits {
    let mut limits = Limits::no_limits();
    limits.max_alloc = max_alloc;
    limits
}

/// Reads the header, refuses an image over `limit` by its stated size, then decodes it.
fn decode_from<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
    name: &Path,
    limit: u64,
) -> Result<DynamicImage, ImageError> {
    let decoder = reader.into_decoder().map_err(|e| not_an_image(name, e))?;
    let (width, height) = decoder.dimensions();
    if decoder.total_bytes() > limit {
        return Err(ImageError::TooLarge {
            path: name.to_path_buf(),
            width,
            height,
            limit_mib: limit >> 20,
        });
    }
    DynamicImage::from_decoder(decoder).map_err(|e| not_an_image(name, e))
}

/// What a header says about an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Whether it holds only grey levels.
    pub grey: bool,
}

/// A reader of the regular file `path` that allocates at most `limit` bytes; the format is
/// the one its bytes show, else the one its name says.
fn reader(path: &Path, limit: Option<u64>) -> Result<ImageReader<BufReader<File>>, ImageError> {
    let mut reader = ImageReader::new(BufReader::new(open_regular(path)?));
    if let Ok(format) = image::ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| ImageError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    reader.limits(limits(limit));
    Ok(reader)
}

fn not_an_image(path: &Path, err: image::ImageError) -> ImageError {
    match err {
        image::ImageError::Limits(_) => ImageError::NotAnImage {
            path: path.to_path_buf(),
            reason: "over the decoder's memory limit".into(),
        },
        other => ImageError::NotAnImage {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// Reads the header of `path` only: its size and whether it is grey. Refuses an image too large
/// to decode.
pub fn read_header(path: &Path) -> Result<Header, ImageError> {
    // No allocation limit for the header: the size it states is checked below, by name.
    let decoder = reader(path, None)?
        .into_decoder()
        .map_err(|e| not_an_image(path, e))?;
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            limit_mib: MAX_DECODE_BYTES >> 20,
        });
    }
    let grey = matches!(
        color,
        ColorType::L8 | ColorType::L16 | ColorType::La8 | ColorType::La16
    );
    Ok(Header {
        width,
        height,
        grey,
    })
}

/// Grey levels as PIL's `convert("L")` computes them from colour (ITU-R 601-2 luma, in PIL's
/// fixed-point arithmetic), which torchvision's `Grayscale` calls; grey images as they are
/// (borrowed when they are 8-bit already).
fn luma(image: &DynamicImage) -> Cow<'_, [u8]> {
    if !image.color().has_color() {
        return match image.as_luma8() {
            Some(grey) => Cow::Borrowed(grey.as_raw()),
            None => Cow::Owned(image.to_luma8().into_raw()),
        };
    }
    let rgb = rgb(image);
    let grey = rgb.chunks_exact(3).map(|p| {
        let [r, g, b] = [p[0], p[1], p[2]].map(u32::from);
        ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8
    });
    Cow::Owned(grey.collect())
}

/// Red, green and blue interleaved, as PIL's `convert("RGB")` gives them (borrowed when the
/// decoder gave exactly that).
fn rgb(image: &DynamicImage) -> Cow<'_, [u8]> {
    match image.as_rgb8() {
        Some(rgb) => Cow::Borrowed(rgb.as_raw()),
        None => Cow::Owned(image.to_rgb8().into_raw()),
    }
}

/// A decoded image's bytes as the network reads them: grey levels, or red, green and blue
/// interleaved; a grey image read by a colour network stays one channel, which the resize
/// copies into all three (PIL's `convert("RGB")` of grey repeats the level).
pub struct Pixels<'a> {
    bytes: Cow<'a, [u8]>,
    channels: usize,
    width: usize,
    height: usize,
}

impl Pixels<'_> {
    /// The channel planes, each `width * height` bytes, for the steps that work plane by
    /// plane (augmentation's crops and flips): `planes` of them.
    fn planes(&self, planes: usize) -> Vec<Vec<u8>> {
        let c = self.channels;
        (0..planes)
            .map(|p| self.bytes.iter().skip(p % c).step_by(c).copied().collect())
            .collect()
    }
}

/// Reads image files into the network's input: `channels` planes of `side x side` values,
/// channel after channel, in `[0, 1]` or normalised as `preprocess` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageTransform {
    /// The side of the square input.
    pub side: usize,
    /// 1 (grey) or 3 (red, green, blue).
    pub channels: usize,
    /// d2l's resize, or ImageNet's resize, crop and normalisation.
    pub preprocess: Preprocess,
}

impl ImageTransform {
    /// d2l's transform to `channels` planes of `side x side`.
    pub fn new(side: usize, channels: usize) -> Self {
        Self {
            side,
            channels,
            preprocess: Preprocess::D2l,
        }
    }

    /// The same, preprocessed as `preprocess` says.
    pub fn with_preprocess(self, preprocess: Preprocess) -> Self {
        Self { preprocess, ..self }
    }

    /// Values per image.
    pub fn values(&self) -> usize {
        self.channels * self.side * self.side
    }

    /// Decodes `path` and writes its input into `out` (`self.len()` values).
    pub fn load_into(&self, path: &Path, out: &mut [f32]) -> Result<(), ImageError> {
        self.read_into(Encoded::File(path), out)
    }

    /// Decodes `image` and writes its input into `out` (`self.len()` values).
    pub fn read_into(&self, image: Encoded, out: &mut [f32]) -> Result<(), ImageError> {
        self.read_augmented(image, out, &Augmentation::default(), (0, 0))
    }

    /// Decodes `image` and writes its input into `out`, changed as `augment` draws for image
    /// `index` in `epoch` (`at`).
    pub fn read_augmented(
        &self,
        image: Encoded,
        out: &mut [f32],
        augment: &Augmentation,
        at: (usize, usize),
    ) -> Result<(), ImageError> {
        let resize_to = self.preprocess.resize_to(self.side);
        let image = match augment.draft_short_side(resize_to, self.side) {
            Some(short) => image.decode_draft(short)?,
            None => image.decode()?,
        };
        let pixels = self.pixels(&image);
        self.resize(&pixels, (augment, at), out);
        self.normalise(out);
        Ok(())
    }

    // The steps of `read_augmented`, which `bench --images --stages` times one by one.

    /// The decoded image's bytes in this transform's channels (grey, or RGB).
    pub fn pixels<'a>(&self, image: &'a DynamicImage) -> Pixels<'a> {
        let (bytes, channels) = match self.channels == 3 && image.color().has_color() {
            true => (rgb(image), 3),
            false => (luma(image), 1),
        };
        Pixels {
            bytes,
            channels,
            width: image.width() as usize,
            height: image.height() as usize,
        }
    }

    /// `pixels` resized, cropped and changed as `augment` draws for image `at`, into `out`
    /// (values in [0, 1]). Without augmentation the channels are resized interleaved, as
    /// decoded; augmentation's crops and flips work on planes.
    pub fn resize(
        &self,
        pixels: &Pixels,
        (augment, at): (&Augmentation, (usize, usize)),
        out: &mut [f32],
    ) {
        let size = (pixels.width, pixels.height);
        let sides = (self.preprocess.resize_to(self.side), self.side);
        if augment.any() {
            let planes = pixels.planes(self.channels);
            let planes: Vec<&[u8]> = planes.iter().map(Vec::as_slice).collect();
            return augment.write(at, &planes, size, sides, out);
        }
        let area = self.side * self.side;
        let (resized, copies) = out.split_at_mut(pixels.channels * area);
        Resize::cropped(size.0, size.1, sides.0, sides.1).resize_interleaved(
            &pixels.bytes,
            pixels.channels,
            resized,
        );
        // A grey image read as colour: the same plane in green and blue.
        for copy in copies.chunks_exact_mut(area) {
            copy.copy_from_slice(&resized[..area]);
        }
    }

    /// Each channel of `out` normalised by its mean and standard deviation, as torchvision's
    /// `Normalize` does in float32 (`(x - mean) / std`), where the preprocessing has them.
    pub fn normalise(&self, out: &mut [f32]) {
        let plane = self.side * self.side;
        for (channel, values) in out.chunks_exact_mut(plane).enumerate() {
            if let Some((mean, std)) = self.preprocess.mean_std(channel, self.channels) {
                values.iter_mut().for_each(|v| *v = (*v - mean) / std);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    #[test]
    fn headers_tell_size_and_colour_without_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let grey = dir.path().join("g.png");
        GrayImage::from_pixel(30, 20, Luma([9]))
            .save(&grey)
            .unwrap();
        let colour = dir.path().join("c.jpg");
        RgbImage::from_pixel(8, 12, Rgb([200, 10, 10]))
            .save(&colour)
            .unwrap();
        assert_eq!(
            read_header(&grey).unwrap(),
            Header {
                width: 30,
                height: 20,
                grey: true
            }
        );
        assert!(!read_header(&colour).unwrap().grey);
        // Cut inside the pixel data: the header still reads, the decode does not.
        let bytes = std::fs::read(&grey).unwrap();
        std::fs::write(&grey, &bytes[..bytes.len() - 20]).unwrap();
        assert!(read_header(&grey).is_ok());
        let transform = ImageTransform::new(8, 1);
        let err = transform
            .load_into(&grey, &mut [0.0; 64])
            .unwrap_err()
            .to_string();
        assert!(err.contains("g.png is not a readable image"), "{err}");
    }

    #[test]
    fn text_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.jpg");
        std::fs::write(&text, "not an image").unwrap();
        let err = read_header(&text).unwrap_err();
        assert_eq!(err.path(), text);
        assert!(err.to_string().contains("is not a readable image"), "{err}");
        let gone = dir.path().join("gone.png");
        assert!(matches!(
            read_header(&gone),
            Err(ImageError::Unreadable { .. })
        ));
    }

    #[test]
    fn fifos_and_folders_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.png");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
        // No writer ever opens the FIFO: a blocking open would hang this test.
        let err = read_header(&fifo).unwrap_err();
        assert!(matches!(err, ImageError::NotAFile { .. }), "{err}");
        assert!(err.to_string().contains("x.png is a FIFO"), "{err}");
        let transform = ImageTransform::new(4, 1);
        let err = transform.load_into(dir.path(), &mut [0.0; 16]).unwrap_err();
        assert!(err.to_string().contains("is a folder"), "{err}");
    }

    #[test]
    fn colour_becomes_grey_by_pils_luma_and_grey_becomes_three_equal_planes() {
        let dir = tempfile::tempdir().unwrap();
        let colour = dir.path().join("c.png");
        RgbImage::from_pixel(4, 4, Rgb([200, 100, 50]))
            .save(&colour)
            .unwrap();
        let grey = dir.path().join("g.png");
        GrayImage::from_pixel(4, 4, Luma([77])).save(&grey).unwrap();
        let load = |path: &Path, channels| {
            let t = ImageTransform::new(4, channels);
            let mut out = vec![0.0; t.values()];
            t.load_into(path, &mut out).unwrap();
            out
        };
        // PIL: (200 * 19595 + 100 * 38470 + 50 * 7471 + 32768) >> 16 = 124.
        assert!(load(&colour, 1).iter().all(|&v| v == 124.0 / 255.0));
        let rgb = load(&colour, 3);
        assert_eq!(
            (rgb[0], rgb[16], rgb[32]),
            (200.0 / 255.0, 100.0 / 255.0, 50.0 / 255.0)
        );
        assert!(load(&grey, 3).iter().all(|&v| v == 77.0 / 255.0));
    }

    /// A smooth colour picture `width x height` as JPEG bytes.
    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let picture = RgbImage::from_fn(width, height, |x, y| {
            let wave = |v: u32, period: f32| ((v as f32 / period).sin() * 100.0 + 128.0) as u8;
            Rgb([wave(x, 40.0), wave(y, 25.0), wave(x + y, 60.0)])
        });
        let mut bytes = Vec::new();
        DynamicImage::from(picture)
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        bytes
    }

    #[test]
    fn the_draft_is_the_largest_reduction_that_keeps_the_shorter_side() {
        assert_eq!(draft_divisor((4000, 3000), 224), Some(8)); // 375
        assert_eq!(draft_divisor((1600, 1200), 224), Some(4)); // 300; 1/8 gives 150
        assert_eq!(draft_divisor((1200, 1600), 256), Some(4)); // 300
        assert_eq!(draft_divisor((500, 448), 224), Some(2)); // exactly 224
        assert_eq!(draft_divisor((500, 447), 224), None); // 223 would be too small
        assert_eq!(draft_divisor((500, 375), 224), None);
    }

    #[test]
    fn a_drafted_jpeg_decodes_smaller_and_close_to_the_whole_decode() {
        let bytes = jpeg(1600, 1200);
        let encoded = Encoded::Bytes {
            name: "photo.jpg",
            bytes: &bytes,
        };
        let whole = encoded.decode().unwrap();
        let drafted = encoded.decode_draft(224).unwrap();
        assert_eq!((whole.width(), whole.height()), (1600, 1200));
        assert_eq!((drafted.width(), drafted.height()), (400, 300));
        assert_eq!(encoded.decode_draft(600).unwrap().width(), 800);
        let none = encoded.decode_draft(601).unwrap();
        assert_eq!(none.width(), 1600, "no reduction keeps 601");
        // The network's inputs from both differ a little, as Pillow's draft does.
        let transform = ImageTransform::new(224, 3);
        let input = |image: &DynamicImage| {
            let mut out = vec![0.0; transform.values()];
            transform.resize(
                &transform.pixels(image),
                (&Augmentation::default(), (0, 0)),
                &mut out,
            );
            out
        };
        let (a, b) = (input(&whole), input(&drafted));
        let mean = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
        assert!(mean > 0.0 && mean < 2.0 / 255.0, "mean difference {mean}");
    }

    #[test]
    fn the_draft_leaves_other_images_and_bad_files_to_the_whole_decoder() {
        let mut png = Vec::new();
        DynamicImage::from(RgbImage::new(1600, 1200))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let png = Encoded::Bytes {
            name: "big.png",
            bytes: &png,
        };
        assert_eq!(png.decode_draft(224).unwrap().width(), 1600);
        let mut cut = jpeg(1600, 1200);
        cut.truncate(600);
        let cut = Encoded::Bytes {
            name: "cut.jpg",
            bytes: &cut,
        };
        assert_eq!(
            cut.decode_draft(224)
                .map(|i| i.width())
                .map_err(|e| e.to_string()),
            cut.decode().map(|i| i.width()).map_err(|e| e.to_string())
        );
    }
}
