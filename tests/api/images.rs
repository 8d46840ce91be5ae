//! Variants of the real MRI images in other encodings, made with the image crate.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbaImage};

fn decode(jpeg: &[u8]) -> DynamicImage {
    image::load_from_memory(jpeg).unwrap()
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn png(jpeg: &[u8]) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(decode(jpeg).to_rgb8()), ImageFormat::Png)
}

pub fn grayscale_png(jpeg: &[u8]) -> Vec<u8> {
    encode(&DynamicImage::ImageLuma8(decode(jpeg).to_luma8()), ImageFormat::Png)
}

/// Half-transparent RGBA: Pillow's convert("RGB") drops alpha, and so must the server.
pub fn rgba_png(jpeg: &[u8]) -> Vec<u8> {
    let mut rgba: RgbaImage = decode(jpeg).to_rgba8();
    rgba.pixels_mut().for_each(|p| p[3] = 128);
    encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png)
}

pub fn rgb16_png(jpeg: &[u8]) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb16(decode(jpeg).to_rgb16()), ImageFormat::Png)
}

pub fn bmp(jpeg: &[u8]) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(decode(jpeg).to_rgb8()), ImageFormat::Bmp)
}

pub fn progressive_jpeg(jpeg: &[u8]) -> Vec<u8> {
    let rgb = decode(jpeg).to_rgb8();
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 95);
    encoder.set_progressive(true);
    encoder.encode(rgb.as_raw(), rgb.width() as u16, rgb.height() as u16, jpeg_encoder::ColorType::Rgb).unwrap();
    assert!(out.windows(2).any(|w| w == [0xFF, 0xC2]), "not a progressive JPEG (no SOF2 marker)");
    out
}

/// The image mirrored left to right, as PNG: a different image of the same class.
pub fn mirrored_png(jpeg: &[u8]) -> Vec<u8> {
    encode(&decode(jpeg).fliph(), ImageFormat::Png)
}

/// A PNG header declaring `width`×`height` pixels with no pixel data: a decompression bomb's
/// calling card. Only a server that allocates before checking would notice anything.
pub fn huge_png_header(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
