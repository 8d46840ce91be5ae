//! Image bytes → one model input sample, reproducing the training pipeline: decode, convert the
//! colour mode as Pillow's `Image.convert` does, resize with Pillow's filters (antialiased when
//! shrinking), map pixels onto `pixel_range`, then `(x - mean) / std`, written in the model's
//! layout. CPU-heavy: callers run it off the async executor.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::dicom::{self, DicomError, DicomOptions, WindowChoice};
use super::resample;
use super::spec::{ColorMode, InputConfig, Layout};
use crate::error_code::Code;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ImageError {
    #[error("not an image in a supported format (JPEG, PNG, GIF, BMP, TIFF, WebP, DICOM)")]
    UnknownFormat,
    #[error(transparent)]
    Dicom(#[from] DicomError),
    #[error("image is {width}x{height} pixels, more than the limit of {max} pixels")]
    TooLarge { width: u32, height: u32, max: u64 },
    #[error("cannot decode the {format} image: {reason}")]
    Corrupt { format: String, reason: String },
}

impl ImageError {
    pub fn code(&self) -> Code {
        match self {
            ImageError::UnknownFormat => Code::UnsupportedImageFormat,
            ImageError::TooLarge { .. } => Code::ImageTooLarge,
            ImageError::Corrupt { .. } => Code::InvalidImage,
            ImageError::Dicom(error) => error.code(),
        }
    }
}

/// Frames a DICOM file may hold unless `with_dicom` says otherwise.
const DEFAULT_MAX_FRAMES: usize = 64;

/// The samples one encoded file yields, and where they came from.
#[derive(Debug)]
pub struct Samples {
    pub samples: Vec<Vec<f32>>,
    /// Set for a DICOM file: its samples are its frames, in order.
    pub dicom: Option<DicomSource>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DicomSource {
    pub sop_instance_uid: Option<String>,
}

/// Turns encoded images into samples for one model.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    input: InputConfig,
    max_pixels: u64,
    dicom: DicomOptions,
    /// Per output channel: the normalised value of each 8-bit pixel value.
    lookup: Vec<[f32; 256]>,
}

impl Preprocessor {
    pub fn new(input: InputConfig, max_pixels: u64) -> Self {
        let [lo, hi] = input.pixel_range;
        let lookup = (0..input.channels())
            .map(|c| {
                let mut table = [0f32; 256];
                for (p, value) in table.iter_mut().enumerate() {
                    let scaled = lo + (hi - lo) * p as f32 / 255.0;
                    *value = (scaled - input.mean[c]) / input.std[c];
                }
                table
            })
            .collect();
        let dicom = DicomOptions { max_pixels, max_frames: DEFAULT_MAX_FRAMES, window: WindowChoice::First };
        Self { input, max_pixels, dicom, lookup }
    }

    /// How DICOM files are rendered, and how many frames one may hold.
    pub fn with_dicom(mut self, window: WindowChoice, max_frames: usize) -> Self {
        self.dicom.window = window;
        self.dicom.max_frames = max_frames;
        self
    }

    pub fn input(&self) -> &InputConfig {
        &self.input
    }

    pub fn sample_len(&self) -> usize {
        self.input.sample_len()
    }

    /// Decodes, resizes and normalises one image into one sample (a DICOM file's first frame).
    pub fn preprocess(&self, encoded: &[u8]) -> Result<Vec<f32>, ImageError> {
        let mut samples = self.preprocess_frames(encoded)?.samples;
        Ok(samples.swap_remove(0))
    }

    /// One sample per frame: one for an image file, one per frame for a DICOM file.
    pub fn preprocess_frames(&self, encoded: &[u8]) -> Result<Samples, ImageError> {
        if dicom::is_dicom(encoded) {
            let file = dicom::decode(encoded, &self.dicom)?;
            let samples = file.frames.into_iter().map(|frame| self.sample(frame)).collect::<Result<Vec<_>, _>>()?;
            if samples.is_empty() {
                return Err(DicomError::NotAnImage("it has no frames").into());
            }
            return Ok(Samples { samples, dicom: Some(DicomSource { sop_instance_uid: file.sop_instance_uid }) });
        }
        Ok(Samples { samples: vec![self.sample(self.decode(encoded)?)?], dicom: None })
    }

    /// Resizes and normalises a decoded image into one sample.
    pub fn sample(&self, image: DynamicImage) -> Result<Vec<f32>, ImageError> {
        let size = (image.width(), image.height());
        let (target, filter) = ((self.input.width, self.input.height), self.input.resize);
        let resized = match self.input.color {
            ColorMode::Rgb | ColorMode::Bgr => {
                resample::resize::<3>(&image.into_rgb8().into_raw(), size, target, filter)
            }
            ColorMode::Grayscale => resample::resize::<1>(&to_pillow_luma(image), size, target, filter),
        };
        Ok(self.normalise(&resized))
    }

    /// Decodes with the pixel limit checked from the header, before any pixel buffer exists,
    /// so a small file declaring a huge image (a decompression bomb) is refused cheaply.
    pub fn decode(&self, encoded: &[u8]) -> Result<DynamicImage, ImageError> {
        let format = image::guess_format(encoded).map_err(|_| ImageError::UnknownFormat)?;
        let corrupt = |e: image::ImageError| match e {
            image::ImageError::Unsupported(_) => ImageError::UnknownFormat,
            image::ImageError::Limits(_) => ImageError::Corrupt {
                format: format_name(format),
                reason: "decoding would need more memory than the pixel limit allows".to_owned(),
            },
            other => ImageError::Corrupt { format: format_name(format), reason: other.to_string() },
        };
        let (width, height) =
            ImageReader::with_format(Cursor::new(encoded), format).into_dimensions().map_err(corrupt)?;
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(ImageError::TooLarge { width, height, max: self.max_pixels });
        }
        if format == ImageFormat::Jpeg && is_truncated_jpeg(encoded) {
            // The JPEG decoder fills a missing tail with grey and carries on; Pillow refuses
            // ("image file is truncated"), and a half-grey scan must not get a diagnosis.
            return Err(ImageError::Corrupt {
                format: format_name(format),
                reason: "the file is truncated (no end-of-image marker after the last scan)".to_owned(),
            });
        }
        let mut limits = Limits::default();
        limits.max_image_width = Some(width);
        limits.max_image_height = Some(height);
        // Widest decoded form is 16-bit RGBA (8 bytes a pixel); leave room for decoder state.
        limits.max_alloc = Some(self.max_pixels.saturating_mul(8).saturating_add(64 << 20));
        let mut reader = ImageReader::with_format(Cursor::new(encoded), format);
        reader.limits(limits);
        reader.decode().map_err(corrupt)
    }

    /// Maps 8-bit pixels through the per-channel lookup tables, in the model's layout. Built by
    /// collecting, so the sample is written once instead of zeroed and then written.
    fn normalise(&self, pixels: &[u8]) -> Vec<f32> {
        let channels = self.input.channels();
        // Output channel c reads source component `order[c]`.
        let order: &[usize] = match self.input.color {
            ColorMode::Rgb => &[0, 1, 2],
            ColorMode::Bgr => &[2, 1, 0],
            ColorMode::Grayscale => &[0],
        };
        let value = |pixel: &[u8], c: usize| self.lookup[c][usize::from(pixel[order[c]])];
        match self.input.layout {
            Layout::Nhwc => {
                pixels.chunks_exact(channels).flat_map(|pixel| (0..channels).map(move |c| value(pixel, c))).collect()
            }
            Layout::Nchw => {
                (0..channels).flat_map(|c| pixels.chunks_exact(channels).map(move |pixel| value(pixel, c))).collect()
            }
        }
    }
}

/// Pillow's `convert("L")` (ITU-R 601-2 luma, rounded) for colour images; grey images as they are.
fn to_pillow_luma(image: DynamicImage) -> Vec<u8> {
    match image {
        DynamicImage::ImageLuma8(grey) => grey.into_raw(),
        DynamicImage::ImageLuma16(_) | DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) => {
            image.into_luma8().into_raw()
        }
        other => other
            .into_rgb8()
            .pixels()
            .map(|p| {
                ((u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471 + 0x8000) >> 16) as u8
            })
            .collect(),
    }
}

/// True when no end-of-image marker (FF D9) follows the last start-of-scan (FF DA). Neither
/// marker can occur inside entropy-coded data (byte stuffing), and an embedded EXIF thumbnail's
/// markers all come before the main image's scans.
fn is_truncated_jpeg(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(scan), Some(end)) => end < scan,
        (_, None) => true,
        (None, Some(_)) => false,
    }
}

fn format_name(format: ImageFormat) -> String {
    format!("{format:?}").to_uppercase()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::{Path, PathBuf};

    use image::{ImageFormat, Rgb, RgbImage};

    use super::*;
    use crate::model::spec::ResizeFilter;

    fn input(layout: Layout, color: ColorMode, resize: ResizeFilter, (width, height): (u32, u32)) -> InputConfig {
        InputConfig {
            name: "x".to_owned(),
            layout,
            width,
            height,
            color,
            resize,
            pixel_range: [0.0, 255.0],
            mean: vec![0.0; color.channels()],
            std: vec![1.0; color.channels()],
        }
    }

    fn png(image: &RgbImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resize").join(name)
    }

    #[test]
    fn reproduces_pillow_resize_for_every_filter() {
        let filters = [
            ("nearest", ResizeFilter::Nearest),
            ("box", ResizeFilter::Box),
            ("bilinear", ResizeFilter::Bilinear),
            ("hamming", ResizeFilter::Hamming),
            ("bicubic", ResizeFilter::Bicubic),
            ("lanczos", ResizeFilter::Lanczos),
        ];
        for source in ["shrink", "enlarge", "mixed", "tall", "same-width", "same-height"] {
            let encoded = std::fs::read(fixture(&format!("{source}.png"))).unwrap();
            for (name, filter) in filters {
                let expected = image::open(fixture(&format!("{source}-{name}.png"))).unwrap().to_rgb8();
                let preprocessor = Preprocessor::new(input(Layout::Nhwc, ColorMode::Rgb, filter, (64, 48)), 1 << 20);
                let ours = preprocessor.preprocess(&encoded).unwrap();
                let worst =
                    ours.iter().zip(expected.as_raw()).map(|(a, b)| (*a - f32::from(*b)).abs()).fold(0.0, f32::max);
                assert!(worst <= 1.0, "{source} with {name}: differs from Pillow by up to {worst} levels");
                assert_eq!(worst, 0.0, "{source} with {name}: Pillow's resize is reproduced to the bit");
            }
        }
    }

    #[test]
    fn writes_nhwc_and_nchw_with_mean_and_std() {
        // 2×1 image: a red pixel and a blue one, no resize.
        let mut image = RgbImage::new(2, 1);
        image.put_pixel(0, 0, Rgb([255, 0, 0]));
        image.put_pixel(1, 0, Rgb([0, 0, 255]));
        let encoded = png(&image);
        let mut config = input(Layout::Nhwc, ColorMode::Rgb, ResizeFilter::Bilinear, (2, 1));
        config.pixel_range = [0.0, 1.0];
        config.mean = vec![0.5, 0.0, 0.0];
        config.std = vec![0.5, 1.0, 2.0];

        let nhwc = Preprocessor::new(config.clone(), 100).preprocess(&encoded).unwrap();
        assert_eq!(nhwc, [1.0, 0.0, 0.0, -1.0, 0.0, 0.5]);

        config.layout = Layout::Nchw;
        let nchw = Preprocessor::new(config.clone(), 100).preprocess(&encoded).unwrap();
        assert_eq!(nchw, [1.0, -1.0, 0.0, 0.0, 0.0, 0.5]);

        config.layout = Layout::Nhwc;
        config.color = ColorMode::Bgr;
        config.mean = vec![0.0; 3];
        config.std = vec![1.0; 3];
        let bgr = Preprocessor::new(config, 100).preprocess(&encoded).unwrap();
        assert_eq!(bgr, [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn grayscale_models_get_pillow_luma() {
        let mut image = RgbImage::new(1, 1);
        image.put_pixel(0, 0, Rgb([200, 100, 50]));
        let config = input(Layout::Nchw, ColorMode::Grayscale, ResizeFilter::Bilinear, (1, 1));
        let sample = Preprocessor::new(config, 100).preprocess(&png(&image)).unwrap();
        // Pillow: L = R * 299/1000 + G * 587/1000 + B * 114/1000, rounded.
        assert_eq!(sample, [124.0]);
    }

    #[test]
    fn refuses_oversized_truncated_and_unknown_images() {
        let config = input(Layout::Nhwc, ColorMode::Rgb, ResizeFilter::Bicubic, (8, 8));
        let big = png(&RgbImage::new(100, 100));
        let err = Preprocessor::new(config.clone(), 9_999).preprocess(&big).unwrap_err();
        assert_eq!(err, ImageError::TooLarge { width: 100, height: 100, max: 9_999 });

        let mut jpeg = Vec::new();
        RgbImage::from_pixel(64, 64, Rgb([10, 200, 30]))
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        let preprocessor = Preprocessor::new(config, 1 << 20);
        assert!(preprocessor.preprocess(&jpeg).is_ok());
        let truncated = preprocessor.preprocess(&jpeg[..jpeg.len() - 40]).unwrap_err();
        assert!(
            matches!(truncated, ImageError::Corrupt { ref reason, .. } if reason.contains("truncated")),
            "{truncated}"
        );

        assert!(matches!(preprocessor.preprocess(b"GIF89a..."), Err(ImageError::Corrupt { .. })));
        assert_eq!(preprocessor.preprocess(b"hello world").unwrap_err(), ImageError::UnknownFormat);
    }
}
