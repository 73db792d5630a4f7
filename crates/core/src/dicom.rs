//! Chest radiographs from DICOM Part 10 files (CR, DX), read with dicom-rs in
//! pure Rust so that the CLI and the browser worker share it.
//!
//! The pixel pipeline follows PS3.3 C.11 in order: the stored values of the
//! first frame, the Modality LUT (Rescale Slope / Intercept), then the first
//! VOI LUT table or, failing that, the first Window Center / Width preset
//! (its VOI LUT Function: linear, linear exact or sigmoid), else the value
//! range; MONOCHROME1 inverted; 8 bits out. The modality values are kept, so
//! that a viewer can re-window without decoding again (`DicomImage::render`).
//!
//! Everything is checked before the pixel data is decoded: the transfer
//! syntax (named when it cannot be decoded here), the photometric
//! interpretation, the modality, rows × columns × frames × bits.

use crate::image_input::{ImageInputError, MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE};
use crate::schema::{DicomInfo, View};
use dicom_core::Tag;
use dicom_dictionary_std::{tags, uids};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{
    ConvertOptions, ModalityLutOption, PixelDecoder, VoiLutFunction, VoiLutOption, WindowLevel,
    WindowLevelTransform,
};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use image::GrayImage;
use serde::{Deserialize, Serialize};

/// Most bytes of pixel data a file may declare (rows × columns × frames ×
/// samples × bits allocated): a 4,300 px square 16-bit radiograph is 37 MB;
/// a multi-frame file is allowed room, though only its first frame is read.
pub const MAX_DECLARED_PIXEL_BYTES: u64 = 1 << 30;

/// Modalities whose images are radiographs the image model can read; a file
/// naming none (or `OT`, other) is read too.
const RADIOGRAPH_MODALITIES: [&str; 4] = ["CR", "DX", "DR", "OT"];

/// Whether `bytes` look like a DICOM Part 10 file (128-byte preamble, `DICM`).
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM")
}

/// The attributes that identify the patient and the study: shown to the
/// user beside the image, never written into a prediction, never sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DicomHeader {
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub study_date: Option<String>,
    pub accession_number: Option<String>,
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
}

/// A window in modality units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub center: f32,
    pub width: f32,
}

/// A VOI LUT table (VOI LUT Sequence, first item).
#[derive(Debug, Clone, PartialEq)]
struct VoiTable {
    first_value: i32,
    entries: Vec<u16>,
    /// The largest value an entry can take.
    top: f32,
}

impl VoiTable {
    fn apply(&self, value: f32) -> f32 {
        let k = (value.round() as i64 - i64::from(self.first_value)).max(0) as usize;
        let entry = self.entries[k.min(self.entries.len() - 1)];
        f32::from(entry) / self.top
    }
}

/// A decoded DICOM radiograph: modality values of its first frame and how
/// to turn them into grey levels.
#[derive(Debug, Clone)]
pub struct DicomImage {
    pub width: u32,
    pub height: u32,
    /// Row-major values after the Modality LUT.
    values: Vec<f32>,
    /// The Window Center / Width presets in the file, in order.
    pub presets: Vec<Window>,
    function: VoiLutFunction,
    table: Option<VoiTable>,
    pub monochrome1: bool,
    pub info: DicomInfo,
    pub header: DicomHeader,
    pub view: View,
}

impl DicomImage {
    /// The lowest and highest modality value in the image.
    pub fn value_range(&self) -> (f32, f32) {
        self.values
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
    }

    /// The window the file asks for: its first preset, else the value range.
    /// (`None` when a VOI LUT table applies instead.)
    pub fn default_window(&self) -> Option<Window> {
        if self.table.is_some() {
            return None;
        }
        Some(self.presets.first().copied().unwrap_or_else(|| {
            let (lo, hi) = self.value_range();
            Window {
                center: (lo + hi) / 2.0,
                width: (hi - lo).max(1.0),
            }
        }))
    }

    /// The 8-bit picture under `window` (`None`: the file's own VOI, as the
    /// models see it), inverted for MONOCHROME1 and again when `invert`.
    pub fn render(&self, window: Option<Window>, invert: bool) -> GrayImage {
        let levels: Box<dyn Fn(f32) -> f32> = match (window, &self.table) {
            (None, Some(table)) => Box::new(move |v| table.apply(v)),
            (w, _) => {
                let w = w.or(self.default_window()).unwrap_or(Window {
                    center: 0.0,
                    width: 1.0,
                });
                let transform = WindowLevelTransform::new(
                    self.function,
                    WindowLevel {
                        center: f64::from(w.center),
                        width: f64::from(w.width),
                    },
                );
                Box::new(move |v| transform.apply(f64::from(v), 1.0) as f32)
            }
        };
        let flip = self.monochrome1 != invert;
        let grey = self.values.iter().map(|&v| {
            let y = levels(v).clamp(0.0, 1.0);
            let y = if flip { 1.0 - y } else { y };
            (y * 255.0).round() as u8
        });
        GrayImage::from_vec(self.width, self.height, grey.collect()).expect("one value per pixel")
    }
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = obj.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!value.is_empty()).then(|| value.to_string())
}

fn number(obj: &InMemDicomObject, tag: Tag) -> Option<u32> {
    obj.get(tag)?.to_int::<u32>().ok()
}

fn dicom_error(what: impl std::fmt::Display) -> ImageInputError {
    ImageInputError::Dicom(what.to_string())
}

/// The projection: View Position first, then the row direction of Patient
/// Orientation (anterior or posterior rows are a lateral view).
fn view_of(view_position: Option<&str>, orientation: Option<&str>) -> View {
    match view_position.map(str::to_ascii_uppercase).as_deref() {
        Some("PA" | "AP") => return View::Frontal,
        Some("LL" | "RL" | "LATERAL" | "LAT") => return View::Lateral,
        Some(_) => return View::Unknown,
        None => {}
    }
    match orientation.and_then(|o| o.trim().chars().next()) {
        Some('A' | 'P') => View::Lateral,
        Some('L' | 'R') => View::Frontal,
        _ => View::Unknown,
    }
}

/// Reads and decodes a DICOM radiograph (the first frame of a multi-frame
/// file), refusing with a message what it cannot read.
pub fn read(bytes: &[u8]) -> Result<DicomImage, ImageInputError> {
    if !is_dicom(bytes) {
        return Err(dicom_error(
            "no DICM marker after the 128-byte preamble: not a DICOM Part 10 file",
        ));
    }
    let meta = dicom_object::meta::FileMetaTable::from_reader(&bytes[128..])
        .map_err(|e| dicom_error(format!("the file meta information is damaged: {e}")))?;
    let uid = meta
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string();
    let Some(syntax) = TransferSyntaxRegistry.get(&uid) else {
        return Err(ImageInputError::DicomTransferSyntax {
            name: "an unknown transfer syntax".into(),
            uid,
            why: "it is not a DICOM standard syntax".into(),
        });
    };
    if !syntax.can_decode_all() {
        let jpeg2000 = [uids::JPEG2000, uids::JPEG2000_LOSSLESS].contains(&syntax.uid());
        let why = if cfg!(target_arch = "wasm32") && jpeg2000 {
            "the browser build leaves JPEG 2000 out (its decoder needs a C allocator); the integrabner CLI reads it"
        } else {
            "no pure-Rust decoder for it is built in"
        };
        return Err(ImageInputError::DicomTransferSyntax {
            name: syntax.name().into(),
            uid,
            why: why.into(),
        });
    }
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(bytes)
        .map_err(|e| {
            dicom_error(format!(
                "the data set cannot be read (the file is cut short or damaged): {e}"
            ))
        })?;
    let modality = text(&obj, tags::MODALITY);
    if let Some(m) = modality.as_deref() {
        if !RADIOGRAPH_MODALITIES.contains(&m) {
            return Err(ImageInputError::NotARadiograph(format!(
                "the DICOM modality is {m}; a chest radiograph is CR or DX"
            )));
        }
    }
    let photometric = text(&obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let monochrome1 = match photometric.as_str() {
        "MONOCHROME1" => true,
        "MONOCHROME2" => false,
        other => {
            return Err(ImageInputError::NotARadiograph(format!(
                "the DICOM photometric interpretation is {}; a radiograph is MONOCHROME1 or MONOCHROME2",
                if other.is_empty() { "missing" } else { other }
            )))
        }
    };
    let rows = number(&obj, tags::ROWS).unwrap_or(0);
    let columns = number(&obj, tags::COLUMNS).unwrap_or(0);
    let frames = number(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let samples = number(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits_allocated = number(&obj, tags::BITS_ALLOCATED).unwrap_or(0);
    let bits_stored = number(&obj, tags::BITS_STORED).unwrap_or(bits_allocated);
    if samples != 1 || !matches!(bits_allocated, 8 | 16) || bits_stored == 0 || bits_stored > 16 {
        return Err(ImageInputError::NotARadiograph(format!(
            "{samples} sample(s) per pixel of {bits_stored} bits stored in {bits_allocated}; a greyscale radiograph has 1 sample of 8 to 16 bits"
        )));
    }
    let declared =
        u64::from(rows) * u64::from(columns) * u64::from(frames) * u64::from(bits_allocated) / 8;
    if u64::from(rows) * u64::from(columns) > MAX_IMAGE_PIXELS {
        return Err(ImageInputError::TooManyPixels {
            width: columns,
            height: rows,
        });
    }
    if declared > MAX_DECLARED_PIXEL_BYTES {
        return Err(dicom_error(format!(
            "{frames} frames of {columns} × {rows} pixels ({declared} bytes) are declared; at most {MAX_DECLARED_PIXEL_BYTES} bytes are accepted"
        )));
    }
    if rows.min(columns) < MIN_IMAGE_SIDE {
        return Err(ImageInputError::TooSmall {
            width: columns,
            height: rows,
        });
    }
    let first_fragment = obj
        .get(tags::PIXEL_DATA)
        .and_then(|e| e.value().fragments())
        .and_then(|f| f.first())
        .map_or(&[][..], Vec::as_slice);
    let pixels = rows as usize * columns as usize;
    if syntax.is_codec_free() {
        let bytes = obj
            .get(tags::PIXEL_DATA)
            .and_then(|e| e.value().to_bytes().ok())
            .map_or(0, |b| b.len());
        let needed = pixels * bits_allocated as usize / 8;
        if bytes < needed {
            return Err(dicom_error(format!(
                "the pixel data holds {bytes} bytes; one frame of {columns} × {rows} needs {needed}"
            )));
        }
    }
    match syntax.uid() {
        uids::RLE_LOSSLESS => check_rle_frame(first_fragment, bits_allocated as usize / 8, pixels)?,
        uids::JPEG2000 | uids::JPEG2000_LOSSLESS => {
            check_jpeg2000_frame(first_fragment, columns, rows)?
        }
        _ => {}
    }
    let decoded = obj.decode_pixel_data_frame(0).map_err(|e| {
        dicom_error(format!(
            "the pixel data cannot be decoded ({}): {e}",
            syntax.name()
        ))
    })?;
    let expected = rows as usize * columns as usize;
    let values: Vec<f32> = decoded
        .to_vec_frame_with_options(
            0,
            &ConvertOptions::new()
                .with_modality_lut(ModalityLutOption::Default)
                .with_voi_lut(VoiLutOption::Identity),
        )
        .map_err(|e| dicom_error(format!("the pixel values cannot be read: {e}")))?;
    if values.len() != expected {
        return Err(dicom_error(format!(
            "the pixel data holds {} values; {columns} × {rows} were declared",
            values.len()
        )));
    }
    let presets = decoded
        .window()
        .ok()
        .flatten()
        .unwrap_or_default()
        .iter()
        .filter(|w| w.width.is_finite() && w.center.is_finite() && w.width > 0.0)
        .map(|w| Window {
            center: w.center as f32,
            width: w.width as f32,
        })
        .collect::<Vec<_>>();
    let function = decoded
        .voi_lut_function()
        .ok()
        .flatten()
        .and_then(|f| f.first().copied())
        .unwrap_or(VoiLutFunction::Linear);
    let table = decoded
        .voi_lut_sequence()
        .ok()
        .flatten()
        .and_then(|luts| luts.first())
        .filter(|lut| !lut.data.is_empty())
        .map(|lut| {
            let max = lut.data.iter().copied().max().unwrap_or(0);
            // Some devices declare 16 bits per entry for 12-bit data: the
            // bits the entries span decide the scale when they are fewer.
            let used = u16::BITS - max.leading_zeros();
            let bits = u32::from(lut.bits_stored).min(used.max(1)).clamp(1, 16);
            VoiTable {
                first_value: lut.min_pixel_value,
                entries: lut.data.clone(),
                top: ((1u32 << bits) - 1) as f32,
            }
        });
    let view_position = text(&obj, tags::VIEW_POSITION);
    let patient_orientation = text(&obj, tags::PATIENT_ORIENTATION);
    let view = view_of(view_position.as_deref(), patient_orientation.as_deref());
    let header = DicomHeader {
        patient_name: text(&obj, tags::PATIENT_NAME)
            .map(|n| n.replace('^', " ").trim().to_string()),
        patient_id: text(&obj, tags::PATIENT_ID),
        patient_birth_date: text(&obj, tags::PATIENT_BIRTH_DATE),
        study_date: text(&obj, tags::STUDY_DATE),
        accession_number: text(&obj, tags::ACCESSION_NUMBER),
        study_instance_uid: text(&obj, tags::STUDY_INSTANCE_UID),
        series_instance_uid: text(&obj, tags::SERIES_INSTANCE_UID),
    };
    let mut image = DicomImage {
        width: columns,
        height: rows,
        values,
        presets,
        function,
        table,
        monochrome1,
        info: DicomInfo {
            modality,
            view_position,
            image_laterality: text(&obj, tags::IMAGE_LATERALITY),
            patient_orientation,
            photometric_interpretation: photometric,
            bits_stored: bits_stored as u16,
            transfer_syntax: syntax.name().to_string(),
            frames,
            window: None,
        },
        header,
        view,
    };
    image.info.window = image.default_window().map(|w| [w.center, w.width]);
    Ok(image)
}

/// Checks an RLE Lossless frame (PS3.5 G) before dicom-rs decodes it: its
/// decoder indexes the header and the decoded segments unchecked, so a
/// damaged fragment would panic (and a panic kills the browser worker).
/// The frame needs one segment per byte of a sample, each decoding to at
/// least one byte per pixel.
fn check_rle_frame(
    fragment: &[u8],
    bytes_per_sample: usize,
    pixels: usize,
) -> Result<(), ImageInputError> {
    let damaged = |why: &str| dicom_error(format!("the RLE pixel data is damaged: {why}"));
    let word = |at: usize| -> Option<usize> {
        let b = fragment.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(segments) = word(0).filter(|_| fragment.len() >= 64) else {
        return Err(damaged("the frame is shorter than its 64-byte header"));
    };
    if segments < bytes_per_sample || segments > 15 {
        return Err(damaged(&format!(
            "{segments} segments for {bytes_per_sample}-byte samples"
        )));
    }
    let mut offsets: Vec<usize> = (1..=segments).filter_map(|k| word(4 * k)).collect();
    offsets.push(fragment.len());
    for pair in offsets.windows(2).take(bytes_per_sample) {
        let segment = fragment
            .get(pair[0]..pair[1])
            .filter(|_| pair[0] >= 64)
            .ok_or_else(|| damaged("a segment lies outside the frame"))?;
        if packbits_length(segment) < pixels {
            return Err(damaged(
                "a segment decodes to fewer bytes than the image has pixels",
            ));
        }
    }
    Ok(())
}

/// Checks that a JPEG 2000 codestream's size marker (SIZ, PS3.5 A.4.4 and
/// ISO 15444-1 A.5.1) describes the image the DICOM attributes declare: one
/// full-resolution component of `columns` × `rows`. dicom-rs copies the
/// decoded component into a buffer sized from the attributes, unchecked.
fn check_jpeg2000_frame(fragment: &[u8], columns: u32, rows: u32) -> Result<(), ImageInputError> {
    let damaged = |why: String| dicom_error(format!("the JPEG 2000 pixel data is damaged: {why}"));
    let head = &fragment[..fragment.len().min(4096)];
    let start = head
        .windows(4)
        .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])
        .ok_or_else(|| damaged("no codestream with a size marker".into()))?;
    let siz = &fragment[start + 4..];
    let word = |at: usize| -> Option<u32> {
        let b = siz.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let short =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*siz.get(at)?, *siz.get(at + 1)?])) };
    // Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz, then
    // Ssiz XRsiz YRsiz per component.
    let read = || -> Option<(u32, u32, u16, u8, u8)> {
        let width = word(4)?.checked_sub(word(12)?)?;
        let height = word(8)?.checked_sub(word(16)?)?;
        Some((width, height, short(36)?, *siz.get(39)?, *siz.get(40)?))
    };
    let Some((width, height, components, x_step, y_step)) = read() else {
        return Err(damaged("its size marker is cut short".into()));
    };
    if (width, height, components, x_step, y_step) != (columns, rows, 1, 1, 1) {
        return Err(damaged(format!(
            "the codestream holds {components} component(s) of {width} × {height} (sampled {x_step}:{y_step}); the file declares 1 of {columns} × {rows}"
        )));
    }
    Ok(())
}

/// The number of bytes a PackBits segment decodes to.
fn packbits_length(segment: &[u8]) -> usize {
    let (mut at, mut length) = (0, 0);
    while let Some(&header) = segment.get(at) {
        match header {
            0..=127 => {
                let n = usize::from(header) + 1;
                length += n.min(segment.len().saturating_sub(at + 1));
                at += 1 + n;
            }
            128 => at += 1,
            _ => {
                if at + 1 < segment.len() {
                    length += 257 - usize::from(header);
                }
                at += 2;
            }
        }
    }
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_comes_from_view_position_then_orientation() {
        assert_eq!(view_of(Some("PA"), None), View::Frontal);
        assert_eq!(view_of(Some("ll"), Some("L\\F")), View::Lateral);
        assert_eq!(view_of(Some("LAO"), None), View::Unknown);
        assert_eq!(view_of(None, Some("A\\F")), View::Lateral);
        assert_eq!(view_of(None, Some("L\\F")), View::Frontal);
        assert_eq!(view_of(None, None), View::Unknown);
    }

    #[test]
    fn packbits_lengths_count_literals_and_runs() {
        // 3 literals, a run of 4, a no-op, a run cut off.
        assert_eq!(packbits_length(&[2, 1, 2, 3, 253, 9, 128, 250]), 7);
        let mut frame = vec![0u8; 64];
        frame[0] = 1;
        frame[4] = 64;
        frame.extend_from_slice(&[253, 5]);
        assert!(check_rle_frame(&frame, 1, 4).is_ok());
        assert!(check_rle_frame(&frame, 1, 5).is_err());
        assert!(check_rle_frame(&frame[..10], 1, 4).is_err());
        assert!(check_rle_frame(&frame, 2, 4).is_err());
    }

    #[test]
    fn a_voi_table_clamps_below_and_above_its_range() {
        let table = VoiTable {
            first_value: 10,
            entries: vec![0, 2, 4],
            top: 4.0,
        };
        assert_eq!(table.apply(-100.0), 0.0);
        assert_eq!(table.apply(11.0), 0.5);
        assert_eq!(table.apply(1e9), 1.0);
    }

    #[test]
    fn files_that_are_not_dicom_say_so() {
        let err = read(b"not a dicom file").unwrap_err();
        assert!(
            err.to_string().contains("not a DICOM Part 10 file"),
            "{err}"
        );
        let mut bytes = vec![0u8; 128];
        bytes.extend_from_slice(b"DICM");
        bytes.extend_from_slice(&[2, 0, 0x10, 0]);
        let err = read(&bytes).unwrap_err();
        assert!(err.to_string().contains("meta information"), "{err}");
    }
}
