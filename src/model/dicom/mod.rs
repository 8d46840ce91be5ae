//! DICOM Part 10 files → one 8-bit image per frame, the way a radiology viewer renders them:
//! Modality LUT (rescale slope/intercept), then the VOI LUT or a window (or min–max when the file
//! has neither), MONOCHROME1 inverted after windowing. The images then take the model's ordinary
//! image pipeline. Limits are checked from the header before any pixel is decoded.
//!
//! Privacy: nothing here puts an attribute value into an error or a log line. Errors name only
//! the transfer syntax, sizes and what is missing; the SOP Instance UID is returned to the caller
//! (so they can match results) and never logged.

use std::borrow::Cow;

use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{
    ConvertOptions, DecodedPixelData, PhotometricInterpretation, PixelDecoder, PlanarConfiguration, VoiLutFunction,
    WindowLevel,
};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use image::{DynamicImage, GrayImage, RgbImage};

use crate::error_code::Code;

mod lengths;
mod rle;

const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// The offset of the `DICM` magic: a Part 10 file starts with a 128-byte preamble.
const PREAMBLE_LEN: usize = 128;

/// Whether the bytes are a DICOM Part 10 file (the `DICM` magic after the preamble).
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(PREAMBLE_LEN..PREAMBLE_LEN + 4) == Some(b"DICM")
}

/// Which VOI transformation turns the modality values into grey levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowChoice {
    /// The file's first VOI LUT, else its first window, else min–max (what viewers open with).
    #[default]
    First,
    /// The file's window at this index (0-based), else as `First`.
    Index(usize),
    /// Always min–max over the frame, ignoring the file's VOI attributes.
    MinMax,
}

impl std::str::FromStr for WindowChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "first" => Ok(WindowChoice::First),
            "min-max" | "minmax" => Ok(WindowChoice::MinMax),
            index => index
                .parse()
                .map(WindowChoice::Index)
                .map_err(|_| "expected `first`, `min-max` or a window index (0, 1, ...)".to_owned()),
        }
    }
}

/// How much one file may hold, and how it is rendered.
#[derive(Debug, Clone, Copy)]
pub struct DicomOptions {
    /// Rows × Columns × frames.
    pub max_pixels: u64,
    pub max_frames: usize,
    pub window: WindowChoice,
}

/// The frames of one file, rendered, and the identifier a caller matches results with.
#[derive(Debug)]
pub struct DicomImage {
    pub sop_instance_uid: Option<String>,
    pub frames: Vec<DynamicImage>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum DicomError {
    #[error("the DICOM transfer syntax {name} ({uid}) is not supported{hint}")]
    UnsupportedTransferSyntax { name: String, uid: String, hint: &'static str },
    #[error("the DICOM file is not an image it can read: {0}")]
    UnsupportedImage(String),
    #[error("the DICOM file holds no image: {0}")]
    NotAnImage(&'static str),
    #[error("the DICOM file is truncated or corrupt ({0})")]
    Corrupt(&'static str),
    #[error("the DICOM image is {rows}x{columns} pixels x {frames} frames, more than the limit of {max} pixels")]
    TooLarge { rows: u32, columns: u32, frames: u32, max: u64 },
    #[error("the DICOM file holds {frames} frames; at most {max} are accepted")]
    TooManyFrames { frames: u32, max: usize },
}

impl DicomError {
    pub fn code(&self) -> Code {
        match self {
            DicomError::UnsupportedTransferSyntax { .. } => Code::UnsupportedTransferSyntax,
            DicomError::UnsupportedImage(_) => Code::UnsupportedDicomImage,
            DicomError::NotAnImage(_) => Code::NotADicomImage,
            DicomError::Corrupt(_) => Code::InvalidDicom,
            DicomError::TooLarge { .. } => Code::ImageTooLarge,
            DicomError::TooManyFrames { .. } => Code::TooManyImages,
        }
    }
}

/// Decodes every frame of a DICOM Part 10 file into an 8-bit grey or RGB image.
pub fn decode(bytes: &[u8], options: &DicomOptions) -> Result<DicomImage, DicomError> {
    // A deflated data set holds at most the pixels (8 bytes each at most) and a header's worth.
    let max_inflated =
        usize::try_from(options.max_pixels.saturating_mul(8)).unwrap_or(usize::MAX).saturating_add(64 << 20);
    lengths::check(bytes, max_inflated)?;
    let header = open(bytes, true)?;
    let geometry = Geometry::of(&header)?;
    check_transfer_syntax(&header, &geometry)?;
    geometry.check_limits(options)?;

    let object = open(bytes, false)?;
    if object.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(DicomError::NotAnImage("there is no Pixel Data element"));
    }
    let sop_instance_uid = object
        .element_opt(tags::SOP_INSTANCE_UID)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|uid| uid.trim_end_matches(['\0', ' ']).to_owned())
        .filter(|uid| !uid.is_empty());
    if object.meta().transfer_syntax() == RLE_LOSSLESS {
        let fragments = object
            .element_opt(tags::PIXEL_DATA)
            .ok()
            .flatten()
            .and_then(|e| e.value().fragments())
            .ok_or(DicomError::Corrupt("its RLE pixel data is not encapsulated"))?;
        let segments = usize::from(geometry.samples_per_pixel) * usize::from(geometry.bits_allocated).div_ceil(8);
        let pixels = geometry.rows as usize * geometry.columns as usize;
        rle::check(fragments, geometry.frames as usize, segments, pixels)?;
    }
    // A decoder that still panics on hostile input fails this file, not the server.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| object.decode_pixel_data()))
        .map_err(|_| DicomError::Corrupt("its pixel data cannot be decoded"))?
        .map_err(|_| DicomError::Corrupt("its pixel data cannot be decoded"))?;
    let frames = (0..decoded.number_of_frames())
        .map(|frame| render(&decoded, frame, options.window))
        .collect::<Result<_, _>>()?;
    Ok(DicomImage { sop_instance_uid, frames })
}

/// The file's meta group and data set, up to (`header_only`) or including the pixel data.
fn open(bytes: &[u8], header_only: bool) -> Result<DefaultDicomObject, DicomError> {
    let mut options = OpenFileOptions::new().read_preamble(ReadPreamble::Always);
    if header_only {
        options = options.read_until(tags::PIXEL_DATA);
    }
    options.from_reader(bytes).map_err(|_| DicomError::Corrupt("its header or data set cannot be parsed"))
}

/// The image attributes read from the header, before any pixel is decoded.
struct Geometry {
    rows: u32,
    columns: u32,
    frames: u32,
    samples_per_pixel: u16,
    bits_allocated: u16,
    bits_stored: u16,
    photometric: String,
}

impl Geometry {
    fn of(header: &InMemDicomObject) -> Result<Self, DicomError> {
        let number = |tag| header.element_opt(tag).ok().flatten().and_then(|e| e.to_int::<u32>().ok());
        let (Some(rows), Some(columns)) = (number(tags::ROWS), number(tags::COLUMNS)) else {
            return Err(DicomError::NotAnImage("it has no Rows and Columns (not an image object)"));
        };
        if rows == 0 || columns == 0 {
            return Err(DicomError::NotAnImage("its Rows or Columns is zero"));
        }
        let photometric = header
            .element_opt(tags::PHOTOMETRIC_INTERPRETATION)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches(['\0', ' ']).to_owned()))
            .unwrap_or_default();
        Ok(Self {
            rows,
            columns,
            frames: number(tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1),
            samples_per_pixel: number(tags::SAMPLES_PER_PIXEL).unwrap_or(1) as u16,
            bits_allocated: number(tags::BITS_ALLOCATED).unwrap_or(0) as u16,
            bits_stored: number(tags::BITS_STORED).unwrap_or(0) as u16,
            photometric,
        })
    }

    fn check_limits(&self, options: &DicomOptions) -> Result<(), DicomError> {
        let pixels = u64::from(self.rows) * u64::from(self.columns) * u64::from(self.frames);
        if pixels > options.max_pixels {
            let Self { rows, columns, frames, .. } = *self;
            return Err(DicomError::TooLarge { rows, columns, frames, max: options.max_pixels });
        }
        if self.frames as usize > options.max_frames {
            return Err(DicomError::TooManyFrames { frames: self.frames, max: options.max_frames });
        }
        match (self.samples_per_pixel, self.bits_allocated, self.photometric.as_str()) {
            (_, 32 | 64, _) => Err(DicomError::UnsupportedImage("32- and 64-bit pixels are not supported".into())),
            (_, _, "PALETTE COLOR") => Err(DicomError::UnsupportedImage("palette colour is not supported".into())),
            (1, 8 | 16, "MONOCHROME1" | "MONOCHROME2") => Ok(()),
            (1, _, "MONOCHROME1" | "MONOCHROME2") => {
                Err(DicomError::UnsupportedImage("grey images must have 8 or 16 bits allocated a pixel".into()))
            }
            (3, 8, "RGB" | "YBR_FULL" | "YBR_FULL_422" | "YBR_ICT" | "YBR_RCT") => Ok(()),
            (3, _, _) => Err(DicomError::UnsupportedImage("colour images must have 8 bits a sample".into())),
            (_, _, other) => Err(DicomError::UnsupportedImage(format!(
                "photometric interpretation {} is not supported",
                printable(other)
            ))),
        }
    }
}

/// Refuses, from the header, what the pure-Rust codecs cannot decode, naming the syntax.
fn check_transfer_syntax(header: &DefaultDicomObject, geometry: &Geometry) -> Result<(), DicomError> {
    let uid = header.meta().transfer_syntax().trim_end_matches(['\0', ' ']);
    let Some(syntax) = TransferSyntaxRegistry.get(uid) else {
        return Err(DicomError::UnsupportedTransferSyntax {
            name: "(unknown)".to_owned(),
            uid: printable(uid).into_owned(),
            hint: "",
        });
    };
    let refuse =
        |hint| DicomError::UnsupportedTransferSyntax { name: syntax.name().to_owned(), uid: uid.to_owned(), hint };
    if uid.starts_with("1.2.840.10008.1.2.4.9") || uid.starts_with("1.2.840.10008.1.2.4.20") {
        return Err(refuse("; JPEG 2000 is refused: send the file in an uncompressed, RLE or JPEG transfer syntax"));
    }
    if !syntax.can_decode_all() {
        return Err(refuse("; send the file in an uncompressed, RLE or JPEG transfer syntax"));
    }
    // The JPEG decoder reads 8-bit samples only; 12-bit JPEG Extended passes the registry's check.
    if uid == "1.2.840.10008.1.2.4.51" && geometry.bits_stored > 8 {
        return Err(refuse(" with 12-bit samples; send the file uncompressed or in JPEG Lossless"));
    }
    let uncompressed = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"];
    if uncompressed.contains(&uid) && geometry.photometric == "YBR_FULL_422" {
        return Err(DicomError::UnsupportedImage("uncompressed YBR_FULL_422 is not supported".into()));
    }
    Ok(())
}

/// One frame as an 8-bit image: grey through the LUTs, or colour as it is.
fn render(decoded: &DecodedPixelData<'_>, frame: u32, window: WindowChoice) -> Result<DynamicImage, DicomError> {
    let (width, height) = (decoded.columns(), decoded.rows());
    let corrupt = |_| DicomError::Corrupt("a frame's pixel data is shorter than its header says");
    match decoded.photometric_interpretation() {
        PhotometricInterpretation::Monochrome1 | PhotometricInterpretation::Monochrome2 => {
            let modality: Vec<f32> =
                decoded.to_vec_frame_with_options(frame, &ConvertOptions::new()).map_err(corrupt)?;
            let mut grey = voi(decoded, &modality, window);
            if decoded.photometric_interpretation() == &PhotometricInterpretation::Monochrome1 {
                grey.iter_mut().for_each(|n| *n = 1.0 - *n);
            }
            let pixels = grey.iter().map(|n| (n.clamp(0.0, 1.0) * 255.0).round_ties_even() as u8).collect();
            GrayImage::from_raw(width, height, pixels)
                .map(DynamicImage::ImageLuma8)
                .ok_or(DicomError::Corrupt("a frame's pixel data is shorter than its header says"))
        }
        photometric => {
            let samples = decoded.frame_data(frame).map_err(corrupt)?;
            let interleaved = interleave(samples, decoded.planar_configuration(), (width * height) as usize);
            let rgb = match photometric {
                PhotometricInterpretation::YbrFull => ybr_full_to_rgb(&interleaved),
                _ => interleaved.into_owned(),
            };
            RgbImage::from_raw(width, height, rgb)
                .map(DynamicImage::ImageRgb8)
                .ok_or(DicomError::Corrupt("a frame's pixel data is shorter than its header says"))
        }
    }
}

/// The VOI step: modality values → [0, 1].
fn voi(decoded: &DecodedPixelData<'_>, modality: &[f32], window: WindowChoice) -> Vec<f32> {
    let lut = decoded.voi_lut_sequence().ok().flatten().and_then(|luts| luts.first());
    let windows = decoded.window().ok().flatten().unwrap_or_default();
    let function = decoded
        .voi_lut_function()
        .ok()
        .flatten()
        .and_then(|functions| functions.first().copied())
        .unwrap_or(VoiLutFunction::Linear);
    let chosen = match window {
        WindowChoice::MinMax => return min_max(modality),
        WindowChoice::Index(index) => windows.get(index).or(windows.first()),
        WindowChoice::First => {
            if let Some(lut) = lut {
                return apply_lut(lut.min_pixel_value, lut.bits_stored, &lut.data, modality);
            }
            windows.first()
        }
    };
    match chosen {
        Some(level) if level.width > 0.0 => modality.iter().map(|&x| windowed(f64::from(x), level, function)).collect(),
        _ => min_max(modality),
    }
}

/// DICOM PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT, SIGMOID), with the output range [0, 1].
fn windowed(x: f64, level: &WindowLevel, function: VoiLutFunction) -> f32 {
    let (c, w) = (level.center, level.width);
    let y = match function {
        VoiLutFunction::Linear => {
            if w < 1.0 {
                if x <= c - 0.5 { 0.0 } else { 1.0 }
            } else if x <= c - 0.5 - (w - 1.0) / 2.0 {
                0.0
            } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                1.0
            } else {
                (x - (c - 0.5)) / (w - 1.0) + 0.5
            }
        }
        VoiLutFunction::LinearExact => {
            if x <= c - w / 2.0 {
                0.0
            } else if x > c + w / 2.0 {
                1.0
            } else {
                (x - c) / w + 0.5
            }
        }
        VoiLutFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
    };
    y as f32
}

/// A VOI LUT: values at or below `first_mapped` take the first entry, above the table the last.
fn apply_lut(first_mapped: i32, bits: u8, table: &[u16], modality: &[f32]) -> Vec<f32> {
    let top = ((1u32 << bits.clamp(1, 16)) - 1) as f32;
    let last = table.len().saturating_sub(1) as i64;
    modality
        .iter()
        .map(|&x| {
            let index = (x.round() as i64 - i64::from(first_mapped)).clamp(0, last) as usize;
            table.get(index).map_or(0.0, |&v| f32::from(v) / top)
        })
        .collect()
}

fn min_max(values: &[f32]) -> Vec<f32> {
    let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi > lo { values.iter().map(|&v| (v - lo) / (hi - lo)).collect() } else { vec![0.0; values.len()] }
}

/// Colour samples as R,G,B,R,G,B...: planar configuration 1 stores each plane whole.
fn interleave(samples: &[u8], planar: PlanarConfiguration, pixels: usize) -> Cow<'_, [u8]> {
    if planar == PlanarConfiguration::Standard || samples.len() < 3 * pixels {
        return Cow::Borrowed(samples);
    }
    let (r, rest) = samples.split_at(pixels);
    let (g, b) = rest.split_at(pixels);
    Cow::Owned((0..pixels).flat_map(|i| [r[i], g[i], b[i]]).collect())
}

/// YBR_FULL (ITU-R BT.601, full range) to RGB, as PS3.3 C.7.6.3.1.2 defines it.
fn ybr_full_to_rgb(ybr: &[u8]) -> Vec<u8> {
    let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    ybr.chunks_exact(3)
        .flat_map(|p| {
            let (y, cb, cr) = (f32::from(p[0]), f32::from(p[1]) - 128.0, f32::from(p[2]) - 128.0);
            [clamp(y + 1.402 * cr), clamp(y - 0.344_136 * cb - 0.714_136 * cr), clamp(y + 1.772 * cb)]
        })
        .collect()
}

/// A header string fit for an error message: codes and UIDs only, so anything else is cut.
fn printable(text: &str) -> Cow<'_, str> {
    if text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b" ._-".contains(&b)) {
        Cow::Borrowed(text)
    } else {
        Cow::Borrowed("(unreadable)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_linear_window_follows_the_standard() {
        let level = WindowLevel { center: 100.0, width: 51.0 };
        let at = |x| windowed(x, &level, VoiLutFunction::Linear);
        assert_eq!(at(74.5), 0.0);
        assert_eq!(at(125.6), 1.0);
        assert!((at(99.5) - 0.5).abs() < 1e-6);
        let exact = WindowLevel { center: 0.0, width: 10.0 };
        assert!((windowed(2.5, &exact, VoiLutFunction::LinearExact) - 0.75).abs() < 1e-6);
        assert!((windowed(0.0, &exact, VoiLutFunction::Sigmoid) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn min_max_spans_zero_to_one_and_a_flat_frame_is_black() {
        assert_eq!(min_max(&[-10.0, 0.0, 10.0]), [0.0, 0.5, 1.0]);
        assert_eq!(min_max(&[7.0, 7.0]), [0.0, 0.0]);
    }

    #[test]
    fn the_magic_is_after_the_preamble() {
        let mut file = vec![0u8; 132];
        assert!(!is_dicom(&file));
        file[128..].copy_from_slice(b"DICM");
        assert!(is_dicom(&file));
        assert!(!is_dicom(b"DICM"));
    }

    #[test]
    fn window_choices_parse() {
        assert_eq!("first".parse(), Ok(WindowChoice::First));
        assert_eq!("min-max".parse(), Ok(WindowChoice::MinMax));
        assert_eq!("2".parse(), Ok(WindowChoice::Index(2)));
        assert!("widest".parse::<WindowChoice>().is_err());
    }

    #[test]
    fn planes_are_interleaved_and_ybr_grey_stays_grey() {
        assert_eq!(
            &*interleave(&[1, 2, 10, 20, 100, 200], PlanarConfiguration::PixelFirst, 2),
            [1, 10, 100, 2, 20, 200]
        );
        assert_eq!(ybr_full_to_rgb(&[90, 128, 128]), [90, 90, 90]);
    }
}
