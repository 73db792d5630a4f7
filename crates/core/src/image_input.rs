//! Decoding radiographs safely: PNG and JPEG (8- or 16-bit greyscale, RGB)
//! and DICOM (`dicom`),
//! with limits checked from the header before any pixel memory is allocated,
//! and pictures that cannot be radiographs (a few pixels, one flat grey, a
//! JPEG cut short) refused rather than analysed: findings coded from them
//! would be noise that looks like an answer. The same code runs in the CLI
//! and in the browser worker.

use crate::dicom;
use crate::schema::{ImageFormat, ImageInfo, View};
pub use image::DynamicImage;
use image::{ImageReader, Limits};
use std::io::Cursor;

/// Largest file accepted, in bytes.
pub const MAX_IMAGE_BYTES: usize = 64 * 1024 * 1024;
/// Largest image accepted, in pixels: 8,000 × 8,000 covers every radiograph
/// format in use (the largest detectors are about 4,300 × 4,300), and the
/// decoded RGBA buffer (256 MB) still fits a browser tab.
pub const MAX_IMAGE_PIXELS: u64 = 64_000_000;
/// Shortest side accepted, in pixels: NIH's smallest copies are 64 px.
pub const MIN_IMAGE_SIDE: u32 = 32;
/// Fewest grey levels between the 1st and 99th percentile of a picture that
/// is accepted: a radiograph spans most of the range, a blank picture none.
pub const MIN_GREY_RANGE: u8 = 16;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImageInputError {
    #[error("the image file is empty")]
    Empty,
    #[error("the image file is {0} bytes; at most {MAX_IMAGE_BYTES} are accepted")]
    FileTooLarge(usize),
    #[error("not a PNG, JPEG or DICOM image")]
    UnknownFormat,
    #[error("the DICOM file cannot be read: {0}")]
    Dicom(String),
    #[error("the DICOM file is encoded in {name} ({uid}), which cannot be decoded here: {why}; save it as explicit VR little endian, RLE, JPEG or JPEG 2000")]
    DicomTransferSyntax {
        name: String,
        uid: String,
        why: String,
    },
    #[error("not a chest radiograph: {0}")]
    NotARadiograph(String),
    #[error(
        "the image is {width} × {height} pixels; at most {MAX_IMAGE_PIXELS} pixels are decoded"
    )]
    TooManyPixels { width: u32, height: u32 },
    #[error("the image is damaged and cannot be decoded: {0}")]
    Corrupt(String),
    #[error("the image is {width} × {height} pixels; a radiograph has at least {MIN_IMAGE_SIDE} on each side")]
    TooSmall { width: u32, height: u32 },
    #[error("the image is almost uniform (98 % of it lies between grey levels {low} and {high} of 255): not a radiograph")]
    Uniform { low: u8, high: u8 },
    #[error("the JPEG ends before its image data does (the file was cut short)")]
    Truncated,
}

fn reader(bytes: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, ImageInputError> {
    if bytes.is_empty() {
        return Err(ImageInputError::Empty);
    }
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(ImageInputError::FileTooLarge(bytes.len()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageInputError::Corrupt(e.to_string()))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => Ok(reader),
        _ => Err(ImageInputError::UnknownFormat),
    }
}

/// Width and height from the header alone.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageInputError> {
    reader(bytes)?
        .into_dimensions()
        .map_err(|e| ImageInputError::Corrupt(e.to_string()))
}

/// An image as the engine takes it: its pixels and what its file said.
#[derive(Debug, Clone)]
pub struct Radiograph {
    pub image: DynamicImage,
    pub info: ImageInfo,
}

impl Radiograph {
    /// A picture with nothing known of its projection (read as frontal).
    pub fn of(image: DynamicImage, format: ImageFormat) -> Self {
        let info = ImageInfo {
            format,
            width: image.width(),
            height: image.height(),
            view: View::Unknown,
            analysed: true,
            dicom: None,
            notes: Vec::new(),
        };
        Self { image, info }
    }

    /// The DICOM image as the models see it (the file's own window).
    pub fn of_dicom(dicom: &dicom::DicomImage) -> Result<Self, ImageInputError> {
        let image = DynamicImage::ImageLuma8(dicom.render(None, false));
        check_grey_range(&image)?;
        let mut notes = Vec::new();
        if dicom.info.frames > 1 {
            notes.push(format!(
                "the file has {} frames; the first was read",
                dicom.info.frames
            ));
        }
        let info = ImageInfo {
            format: ImageFormat::Dicom,
            width: dicom.width,
            height: dicom.height,
            view: dicom.view,
            analysed: true,
            dicom: Some(dicom.info.clone()),
            notes,
        };
        Ok(Self { image, info })
    }
}

/// Reads a PNG, JPEG or DICOM file (see `decode` and `dicom::read`).
pub fn read(bytes: &[u8]) -> Result<Radiograph, ImageInputError> {
    if dicom::is_dicom(bytes) {
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(ImageInputError::FileTooLarge(bytes.len()));
        }
        return Radiograph::of_dicom(&dicom::read(bytes)?);
    }
    let format = match reader(bytes)?.format() {
        Some(image::ImageFormat::Jpeg) => ImageFormat::Jpeg,
        _ => ImageFormat::Png,
    };
    Ok(Radiograph::of(decode_picture(bytes)?, format))
}

/// Decodes the whole image (PNG, JPEG or DICOM) after checking its size
/// against the limits, and refuses pictures that cannot be radiographs.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, ImageInputError> {
    Ok(read(bytes)?.image)
}

fn check_grey_range(image: &DynamicImage) -> Result<(), ImageInputError> {
    let (low, high) = grey_range(image);
    if high - low < MIN_GREY_RANGE {
        return Err(ImageInputError::Uniform { low, high });
    }
    Ok(())
}

fn decode_picture(bytes: &[u8]) -> Result<DynamicImage, ImageInputError> {
    let (width, height) = dimensions(bytes)?;
    if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
        return Err(ImageInputError::TooManyPixels { width, height });
    }
    if width.min(height) < MIN_IMAGE_SIDE {
        return Err(ImageInputError::TooSmall { width, height });
    }
    let mut reader = reader(bytes)?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(ImageInputError::Truncated);
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 8);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|e| ImageInputError::Corrupt(e.to_string()))?;
    check_grey_range(&image)?;
    Ok(image)
}

/// Whether the JPEG's last scan is followed by its end-of-image marker. A
/// file cut short would still decode, its missing part filled in grey.
/// (Inside entropy-coded data a 0xFF byte is always followed by 0x00 or a
/// restart marker, so neither marker can appear there by chance.)
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let marker = |code: u8| move |w: &[u8]| w == [0xFF, code];
    let Some(last_scan) = bytes.windows(2).rposition(marker(0xDA)) else {
        return false;
    };
    bytes[last_scan..].windows(2).any(marker(0xD9))
}

/// The levels below which 1 % and 99 % of the picture's grey values lie,
/// measured on a copy of at most 256 px a side.
fn grey_range(image: &DynamicImage) -> (u8, u8) {
    let grey = image.thumbnail(256, 256).to_luma8();
    let mut histogram = [0usize; 256];
    for p in grey.pixels() {
        histogram[usize::from(p[0])] += 1;
    }
    let n = grey.pixels().len();
    let level_below = |percent: usize| {
        let mut seen = 0;
        histogram
            .iter()
            .position(|&count| {
                seen += count;
                seen * 100 > n * percent
            })
            .map_or(u8::MAX, |level| level as u8)
    };
    (level_below(1), level_below(99))
}

/// How a picture is fitted into an image encoder's square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Scale the shorter side to the input size and cut the middle out.
    CenterCrop,
    /// Scale the longer side to the input size and pad the rest with black:
    /// nothing of a radiograph is lost.
    Pad,
}

/// Where a `width` × `height` picture lands in a `size` × `size` input.
struct Placement {
    scaled_width: u32,
    scaled_height: u32,
    /// Input pixel (x, y) shows scaled pixel (x + offset_x, y + offset_y):
    /// positive offsets crop, negative ones pad.
    offset_x: i64,
    offset_y: i64,
}

impl Placement {
    fn new(width: u32, height: u32, size: u32, fit: Fit) -> Self {
        let (w, h) = (width.max(1), height.max(1));
        let scale = match fit {
            Fit::CenterCrop => size as f32 / w.min(h) as f32,
            Fit::Pad => size as f32 / w.max(h) as f32,
        };
        let scaled_width = ((w as f32 * scale).round() as u32).max(1);
        let scaled_height = ((h as f32 * scale).round() as u32).max(1);
        Self {
            scaled_width,
            scaled_height,
            offset_x: (i64::from(scaled_width) - i64::from(size)) / 2,
            offset_y: (i64::from(scaled_height) - i64::from(size)) / 2,
        }
    }
}

/// The part of a `size` input that shows the picture, as `[left, top,
/// right, bottom]` fractions of `size` (clamped to the input: a crop fills it).
pub fn input_region(width: u32, height: u32, size: u32, fit: Fit) -> [f32; 4] {
    let p = Placement::new(width, height, size, fit);
    let side = size as f32;
    let clamp = |v: i64| (v as f32 / side).clamp(0.0, 1.0);
    [
        clamp(-p.offset_x),
        clamp(-p.offset_y),
        clamp(i64::from(p.scaled_width) - p.offset_x),
        clamp(i64::from(p.scaled_height) - p.offset_y),
    ]
}

/// The image as an encoder input: `[3, size, size]` RGB values in 0..=255,
/// channel-major. Greyscale (8- or 16-bit) repeats its channel; the aspect
/// ratio is kept (bilinear scaling). Each encoder normalizes these values
/// its own way.
pub fn encoder_input(img: &DynamicImage, size: u32, fit: Fit) -> Vec<f32> {
    let rgb = img.to_rgb8();
    let p = Placement::new(rgb.width(), rgb.height(), size, fit);
    let (sw, sh) = (p.scaled_width, p.scaled_height);
    let scaled = image::imageops::resize(&rgb, sw, sh, image::imageops::FilterType::Triangle);
    let plane = (size * size) as usize;
    let mut out = vec![0f32; 3 * plane];
    for y in 0..size {
        for x in 0..size {
            let (sx, sy) = (x as i64 + p.offset_x, y as i64 + p.offset_y);
            if sx < 0 || sy < 0 || sx >= sw as i64 || sy >= sh as i64 {
                continue;
            }
            let p = scaled.get_pixel(sx as u32, sy as u32);
            let i = (y * size + x) as usize;
            for c in 0..3 {
                out[c * plane + i] = f32::from(p[c]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, ImageFormat, Luma};

    #[test]
    fn encoder_input_keeps_the_aspect_ratio() {
        // A 40 x 20 grey image: white left half, black right half.
        let img = DynamicImage::ImageLuma8(GrayImage::from_fn(40, 20, |x, _| {
            Luma([if x < 20 { 255 } else { 0 }])
        }));
        let padded = encoder_input(&img, 8, Fit::Pad);
        assert_eq!(padded.len(), 3 * 64);
        // Scaled to 8 x 4 and centred: rows 0-1 and 6-7 are padding.
        assert_eq!(padded[0], 0.0);
        assert_eq!(padded[2 * 8], 255.0);
        assert_eq!(padded[2 * 8 + 7], 0.0);
        assert_eq!(padded[64 + 2 * 8], 255.0, "grey repeats into G");
        assert_eq!(input_region(40, 20, 8, Fit::Pad), [0.0, 0.25, 1.0, 0.75]);
        assert_eq!(
            input_region(40, 20, 8, Fit::CenterCrop),
            [0.0, 0.0, 1.0, 1.0]
        );
        let cropped = encoder_input(&img, 8, Fit::CenterCrop);
        // Scaled to 16 x 8, the middle 8 columns: left half white.
        assert_eq!(cropped[0], 255.0);
        assert_eq!(cropped[7], 0.0);
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = GrayImage::from_fn(width, height, |x, y| Luma([((x + y) % 256) as u8]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// A valid PNG header claiming `width` × `height`, with no pixel data.
    fn png_header_only(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = png(1, 1);
        bytes[16..20].copy_from_slice(&width.to_be_bytes());
        bytes[20..24].copy_from_slice(&height.to_be_bytes());
        // The IHDR chunk's CRC covers its type and data (bytes 12..29).
        let mut crc = flate2::Crc::new();
        crc.update(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        bytes
    }

    #[test]
    fn a_greyscale_png_decodes() {
        let img = decode(&png(40, 32)).unwrap();
        assert_eq!((img.width(), img.height()), (40, 32));
    }

    #[test]
    fn a_20000_square_image_is_refused_before_decoding() {
        assert_eq!(
            decode(&png_header_only(20_000, 20_000)).unwrap_err(),
            ImageInputError::TooManyPixels {
                width: 20_000,
                height: 20_000
            }
        );
    }

    #[test]
    fn truncated_and_foreign_files_give_clear_errors() {
        let full = png(64, 64);
        let cut = &full[..full.len() / 2];
        assert!(matches!(decode(cut), Err(ImageInputError::Corrupt(_))));
        assert_eq!(
            decode(b"GIF89a....").unwrap_err(),
            ImageInputError::UnknownFormat
        );
        assert_eq!(decode(b"").unwrap_err(), ImageInputError::Empty);
    }

    fn jpeg_of(img: &GrayImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn pictures_that_cannot_be_radiographs_are_refused() {
        assert_eq!(
            decode(&png(1, 1)).unwrap_err(),
            ImageInputError::TooSmall {
                width: 1,
                height: 1
            }
        );
        let flat = |level: u8| {
            let img = GrayImage::from_pixel(512, 512, Luma([level]));
            let mut out = Cursor::new(Vec::new());
            img.write_to(&mut out, ImageFormat::Png).unwrap();
            out.into_inner()
        };
        assert_eq!(
            decode(&flat(0)).unwrap_err(),
            ImageInputError::Uniform { low: 0, high: 0 }
        );
        assert!(matches!(
            decode(&flat(200)),
            Err(ImageInputError::Uniform { .. })
        ));
        let gradient = GrayImage::from_fn(64, 64, |x, y| Luma([((x + y) * 2) as u8]));
        let jpeg = jpeg_of(&gradient);
        assert!(decode(&jpeg).is_ok());
        assert_eq!(
            decode(&jpeg[..jpeg.len() * 3 / 4]).unwrap_err(),
            ImageInputError::Truncated
        );
    }
}
