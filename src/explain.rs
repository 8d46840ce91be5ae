//! Occlusion sensitivity (Zeiler & Fergus, 2014): the model input divided into a grid, each cell
//! in turn replaced by the input's mean colour, and the drop in the predicted class's probability
//! per cell. Model-agnostic: it needs only samples in and probabilities out, so the masked copies
//! go through the same queue and batcher as every other sample. CPU work: run off the executor.

use std::io::Cursor;

use image::{ImageEncoder, RgbImage, codecs::png::PngEncoder};

use crate::model::spec::{ColorMode, InputConfig, Layout};

/// The grid side when a request does not ask for one.
pub const DEFAULT_GRID: u32 = 8;

/// The map for one image: `drops[row * columns + column]`.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The class whose probability the drops measure (the prediction's top class).
    pub class: usize,
    pub grid: u32,
    pub drops: Vec<f32>,
    /// The input as the model saw it, with the map overlaid, as a PNG file.
    pub overlay_png: Vec<u8>,
}

/// A cell's pixel rectangle: rows `y0..y1`, columns `x0..x1` (the last cells take the remainder).
fn cell_bounds(input: &InputConfig, grid: u32, cell: usize) -> (usize, usize, usize, usize) {
    let (grid, height, width) = (grid as usize, input.height as usize, input.width as usize);
    let (row, column) = (cell / grid, cell % grid);
    (row * height / grid, (row + 1) * height / grid, column * width / grid, (column + 1) * width / grid)
}

/// Where pixel (y, x) of channel c lives in a sample.
fn index(input: &InputConfig, y: usize, x: usize, c: usize) -> usize {
    let (height, width, channels) = (input.height as usize, input.width as usize, input.channels());
    match input.layout {
        Layout::Nhwc => (y * width + x) * channels + c,
        Layout::Nchw => (c * height + y) * width + x,
    }
}

/// The per-channel mean of a sample: the fill that adds no colour of its own.
fn channel_means(input: &InputConfig, sample: &[f32]) -> Vec<f32> {
    let (height, width) = (input.height as usize, input.width as usize);
    let pixels = (height * width) as f64;
    (0..input.channels())
        .map(|c| {
            let sum: f64 = (0..height)
                .flat_map(|y| (0..width).map(move |x| (y, x)))
                .map(|(y, x)| f64::from(sample[index(input, y, x, c)]))
                .sum();
            (sum / pixels) as f32
        })
        .collect()
}

/// The sample with each of `cells` (in order) masked in turn: one copy per cell.
pub fn masked_copies(input: &InputConfig, sample: &[f32], grid: u32, cells: std::ops::Range<usize>) -> Vec<Vec<f32>> {
    let fill = channel_means(input, sample);
    cells
        .map(|cell| {
            let mut copy = sample.to_vec();
            let (y0, y1, x0, x1) = cell_bounds(input, grid, cell);
            for y in y0..y1 {
                for x in x0..x1 {
                    for (c, &value) in fill.iter().enumerate() {
                        copy[index(input, y, x, c)] = value;
                    }
                }
            }
            copy
        })
        .collect()
}

/// The sample as 8-bit RGB (undoing the normalisation), with cells whose masking lowered the
/// class's probability tinted red in proportion to the largest drop. Increases are left clear.
pub fn overlay_png(input: &InputConfig, sample: &[f32], grid: u32, drops: &[f32]) -> Vec<u8> {
    let (height, width) = (input.height as usize, input.width as usize);
    let [lo, hi] = input.pixel_range;
    let to_byte = |value: f32, c: usize| {
        let unnormalised = value * input.std[c] + input.mean[c];
        ((unnormalised - lo) / (hi - lo) * 255.0).round().clamp(0.0, 255.0) as u8
    };
    let largest = drops.iter().copied().fold(0.0f32, f32::max);
    let mut image = RgbImage::new(input.width, input.height);
    for (cell, &drop) in drops.iter().enumerate() {
        let weight = if largest > 0.0 { (drop / largest).clamp(0.0, 1.0) * 0.6 } else { 0.0 };
        let (y0, y1, x0, x1) = cell_bounds(input, grid, cell);
        for y in y0..y1.min(height) {
            for x in x0..x1.min(width) {
                let rgb = match input.color {
                    ColorMode::Rgb => [0, 1, 2].map(|c| to_byte(sample[index(input, y, x, c)], c)),
                    ColorMode::Bgr => [2, 1, 0].map(|c| to_byte(sample[index(input, y, x, c)], c)),
                    ColorMode::Grayscale => [to_byte(sample[index(input, y, x, 0)], 0); 3],
                };
                let tint = [255.0, 40.0, 0.0];
                let blended = [0, 1, 2].map(|i| (f32::from(rgb[i]) * (1.0 - weight) + tint[i] * weight).round() as u8);
                image.put_pixel(x as u32, y as u32, image::Rgb(blended));
            }
        }
    }
    let mut png = Vec::new();
    // Writing a PNG into memory cannot fail for an RGB8 buffer of the right size.
    let _ = PngEncoder::new(Cursor::new(&mut png)).write_image(
        image.as_raw(),
        input.width,
        input.height,
        image::ExtendedColorType::Rgb8,
    );
    png
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::ResizeFilter;

    fn input(layout: Layout, color: ColorMode, width: u32, height: u32) -> InputConfig {
        let channels = color.channels();
        InputConfig {
            name: "x".into(),
            layout,
            width,
            height,
            color,
            resize: ResizeFilter::Bilinear,
            pixel_range: [0.0, 1.0],
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    #[test]
    fn each_copy_masks_one_cell_with_the_mean_and_leaves_the_rest() {
        for layout in [Layout::Nhwc, Layout::Nchw] {
            let config = input(layout, ColorMode::Rgb, 4, 4);
            // Channel c of pixel (y, x) holds y*4 + x + 100c: every value distinct.
            let mut sample = vec![0.0; 48];
            for (y, x, c) in (0..4).flat_map(|y| (0..4).flat_map(move |x| (0..3).map(move |c| (y, x, c)))) {
                sample[index(&config, y, x, c)] = (y * 4 + x + 100 * c) as f32;
            }
            let copies = masked_copies(&config, &sample, 2, 0..4);
            assert_eq!(copies.len(), 4);
            // Cell 3 is the bottom-right 2x2 block.
            let changed: Vec<usize> = (0..48).filter(|&i| copies[3][i] != sample[i]).collect();
            let config = &config;
            let mut expected: Vec<usize> = [(2, 2), (2, 3), (3, 2), (3, 3)]
                .iter()
                .flat_map(|&(y, x)| (0..3).map(move |c| index(config, y, x, c)))
                .collect();
            expected.sort();
            assert_eq!(changed, expected, "{layout:?}");
            assert_eq!(copies[3][index(config, 3, 3, 1)], 107.5, "the mean of channel 1");
        }
    }

    #[test]
    fn the_overlay_is_a_png_of_the_input_size_tinted_where_the_drop_is() {
        let config = input(Layout::Nhwc, ColorMode::Grayscale, 4, 2);
        let png = overlay_png(&config, &[0.5; 8], 2, &[0.0, 0.4, 0.0, -0.2]);
        let decoded = image::load_from_memory(&png).unwrap().into_rgb8();
        assert_eq!(decoded.dimensions(), (4, 2));
        assert_eq!(decoded.get_pixel(0, 0).0, [128, 128, 128]);
        // The largest drop gets the strongest tint; the increase none.
        assert_eq!(decoded.get_pixel(3, 0).0, [204, 75, 51]);
        assert_eq!(decoded.get_pixel(3, 1).0, [128, 128, 128]);
    }
}
