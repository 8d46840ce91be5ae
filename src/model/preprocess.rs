//! Image bytes → one model input sample, reproducing the training pipeline: decode, convert the
//! colour mode as Pillow's `Image.convert` does, resize with Pillow's filters (antialiased when
//! shrinking), map pixels onto `pixel_range`, then `(x - mean) / std`, written in the model's
//! layout. CPU-heavy: callers run it off the async executor.

use std::io::Cursor;

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::spec::{ColorMode, InputConfig, Layout, ResizeFilter};

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ImageError {
    #[error("not an image in a supported format (JPEG, PNG, GIF, BMP, TIFF, WebP)")]
    UnknownFormat,
    #[error("image is {width}x{height} pixels, more than the limit of {max} pixels")]
    TooLarge { width: u32, height: u32, max: u64 },
    #[error("cannot decode the {format} image: {reason}")]
    Corrupt { format: String, reason: String },
}

/// Turns encoded images into samples for one model.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    input: InputConfig,
    max_pixels: u64,
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
        Self {
            input,
            max_pixels,
            lookup,
        }
    }

    pub fn sample_len(&self) -> usize {
        self.input.sample_len()
    }

    /// Decodes, resizes and normalises one image into `out`, which holds one sample.
    pub fn preprocess_into(&self, encoded: &[u8], out: &mut [f32]) -> Result<(), ImageError> {
        debug_assert_eq!(out.len(), self.sample_len());
        let image = self.decode(encoded)?;
        let size = (image.width(), image.height());
        let (pixels, pixel_type) = match self.input.color {
            ColorMode::Rgb | ColorMode::Bgr => (image.into_rgb8().into_raw(), PixelType::U8x3),
            ColorMode::Grayscale => (to_pillow_luma(image), PixelType::U8),
        };
        let resized = self.resize(pixels, size, pixel_type)?;
        self.normalise(&resized, out);
        Ok(())
    }

    pub fn preprocess(&self, encoded: &[u8]) -> Result<Vec<f32>, ImageError> {
        let mut sample = vec![0.0; self.sample_len()];
        self.preprocess_into(encoded, &mut sample)?;
        Ok(sample)
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
            other => ImageError::Corrupt {
                format: format_name(format),
                reason: other.to_string(),
            },
        };
        let (width, height) = ImageReader::with_format(Cursor::new(encoded), format)
            .into_dimensions()
            .map_err(corrupt)?;
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(ImageError::TooLarge {
                width,
                height,
                max: self.max_pixels,
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

    fn resize(
        &self,
        pixels: Vec<u8>,
        (source_width, source_height): (u32, u32),
        pixel_type: PixelType,
    ) -> Result<Vec<u8>, ImageError> {
        let (width, height) = (self.input.width, self.input.height);
        if (source_width, source_height) == (width, height) {
            return Ok(pixels);
        }
        let internal = |e: &dyn std::fmt::Display| ImageError::Corrupt {
            format: "decoded".to_owned(),
            reason: e.to_string(),
        };
        let source = Image::from_vec_u8(source_width, source_height, pixels, pixel_type)
            .map_err(|e| internal(&e))?;
        let mut target = Image::new(width, height, pixel_type);
        let algorithm = match self.input.resize {
            ResizeFilter::Nearest => ResizeAlg::Nearest,
            ResizeFilter::Box => ResizeAlg::Convolution(FilterType::Box),
            ResizeFilter::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
            ResizeFilter::Hamming => ResizeAlg::Convolution(FilterType::Hamming),
            ResizeFilter::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
            ResizeFilter::Lanczos => ResizeAlg::Convolution(FilterType::Lanczos3),
        };
        Resizer::new()
            .resize(
                &source,
                &mut target,
                &ResizeOptions::new().resize_alg(algorithm),
            )
            .map_err(|e| internal(&e))?;
        Ok(target.into_vec())
    }

    fn normalise(&self, pixels: &[u8], out: &mut [f32]) {
        let channels = self.input.channels();
        // Output channel c reads source component `order[c]`.
        let order: &[usize] = match self.input.color {
            ColorMode::Rgb => &[0, 1, 2],
            ColorMode::Bgr => &[2, 1, 0],
            ColorMode::Grayscale => &[0],
        };
        let plane = pixels.len() / channels;
        for (i, pixel) in pixels.chunks_exact(channels).enumerate() {
            for (c, &component) in order.iter().enumerate() {
                let value = self.lookup[c][usize::from(pixel[component])];
                match self.input.layout {
                    Layout::Nhwc => out[i * channels + c] = value,
                    Layout::Nchw => out[c * plane + i] = value,
                }
            }
        }
    }
}

/// Pillow's `convert("L")` (ITU-R 601-2 luma, rounded) for colour images; grey images as they are.
fn to_pillow_luma(image: DynamicImage) -> Vec<u8> {
    match image {
        DynamicImage::ImageLuma8(grey) => grey.into_raw(),
        DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageLumaA16(_) => image.into_luma8().into_raw(),
        other => other
            .into_rgb8()
            .pixels()
            .map(|p| {
                ((u32::from(p[0]) * 19595
                    + u32::from(p[1]) * 38470
                    + u32::from(p[2]) * 7471
                    + 0x8000)
                    >> 16) as u8
            })
            .collect(),
    }
}

fn format_name(format: ImageFormat) -> String {
    format!("{format:?}").to_uppercase()
}
