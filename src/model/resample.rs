//! Pillow's `Image.resize` for 8-bit images, reproduced to the bit: the models this server runs
//! were trained on images Pillow resized, and a grey level off here is a grey level off in every
//! input. Convolution filters (box, bilinear, hamming, bicubic, lanczos) follow
//! `libImaging/Resample.c`: per output pixel a normalised window of filter weights, widened by
//! the scale when shrinking (the antialiasing), turned into 22-bit fixed point; one pass per
//! axis, the first clipped to 8 bits before the second. Nearest follows
//! `libImaging/Geometry.c`'s scaling (`ImagingScaleAffine`). fast_image_resize, used before,
//! rounds its weights differently (a level off in most of the fixtures) and always takes the
//! horizontal pass first (up to 12 levels off where Pillow takes the vertical one first). Shown
//! identical to Pillow 13.0.0 on x86-64 (tests/fixtures/resize/ and 19 real images); Pillow's own
//! arm64 builds may fuse multiply-adds in its weight polynomials, which this code does not.

use super::spec::ResizeFilter;

/// Bits of the fixed-point weights: 8 bits of pixel and two of headroom for filters whose
/// weights go negative or sum above one (Resample.c's `PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Resizes interleaved 8-bit pixels with `C` samples each (1 for grey, 3 for RGB) from `from`
/// to `to` (width, height).
pub fn resize<const C: usize>(pixels: &[u8], from: (u32, u32), to: (u32, u32), filter: ResizeFilter) -> Vec<u8> {
    debug_assert_eq!(pixels.len(), from.0 as usize * from.1 as usize * C);
    if from.0 == 0 || from.1 == 0 {
        // Nothing to sample (the decoders refuse such images before this): black, as Pillow
        // fills what no source pixel covers.
        return vec![0; to.0 as usize * to.1 as usize * C];
    }
    let image = Pixels::<C> { data: pixels, width: from.0 as usize };
    let Some(kernel) = Kernel::of(filter) else {
        return nearest(&image, from.1 as usize, to);
    };
    let (in_width, in_height) = (from.0 as usize, from.1 as usize);
    let (width, height) = (to.0 as usize, to.1 as usize);
    let horizontal = (in_width != width).then(|| Weights::new(in_width, width, kernel));
    let vertical = (in_height != height).then(|| Weights::new(in_height, height, kernel));
    match (horizontal, vertical) {
        (Some(horizontal), None) => horizontal_pass(&image, &horizontal, in_height),
        (None, Some(vertical)) => vertical_pass(&image, &vertical),
        (Some(horizontal), Some(vertical)) if vertical_first(from, to) => {
            let rows = vertical_pass(&image, &vertical);
            horizontal_pass(&Pixels::<C> { data: &rows, width: in_width }, &horizontal, height)
        }
        // Pillow resizes horizontally only the rows the vertical pass reads; for a whole image,
        // as here, those are all of them.
        (Some(horizontal), Some(vertical)) => {
            let rows = horizontal_pass(&image, &horizontal, in_height);
            vertical_pass(&Pixels::<C> { data: &rows, width }, &vertical)
        }
        (None, None) => pixels.to_vec(),
    }
}

/// Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many
/// pixels as the width does (to make the second pass cheaper); releases from before that rule
/// always ran the horizontal pass first. The order moves some pixels by a level or more, so it is
/// Pillow 13's here, the version of the reference pipeline: a model trained with an older Pillow
/// may see slightly different pixels from tall images.
fn vertical_first(from: (u32, u32), to: (u32, u32)) -> bool {
    let height_shrink = i64::from(from.1) - i64::from(to.1);
    let width_shrink = i64::from(from.0) - i64::from(to.0);
    height_shrink > 0 && height_shrink > width_shrink * 2
}

/// Rows of `width` pixels of `C` interleaved samples.
struct Pixels<'a, const C: usize> {
    data: &'a [u8],
    width: usize,
}

impl<const C: usize> Pixels<'_, C> {
    fn row(&self, y: usize) -> &[u8] {
        let stride = self.width * C;
        &self.data[y * stride..(y + 1) * stride]
    }
}

#[derive(Clone, Copy)]
struct Kernel {
    filter: fn(f64) -> f64,
    support: f64,
}

impl Kernel {
    /// The convolution filter and its support (radius) in source pixels; none for nearest.
    fn of(filter: ResizeFilter) -> Option<Self> {
        let (filter, support): (fn(f64) -> f64, f64) = match filter {
            ResizeFilter::Nearest => return None,
            ResizeFilter::Box => (box_filter, 0.5),
            ResizeFilter::Bilinear => (bilinear_filter, 1.0),
            ResizeFilter::Hamming => (hamming_filter, 1.0),
            ResizeFilter::Bicubic => (bicubic_filter, 2.0),
            ResizeFilter::Lanczos => (lanczos_filter, 3.0),
        };
        Some(Self { filter, support })
    }
}

fn box_filter(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 { 1.0 } else { 0.0 }
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

fn hamming_filter(x: f64) -> f64 {
    let x = x.abs();
    if x == 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let x = x * std::f64::consts::PI;
    // Pillow writes these two constants as C floats.
    x.sin() / x * (f64::from(0.54f32) + f64::from(0.46f32) * x.cos())
}

fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

fn lanczos_filter(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) { sinc(x) * sinc(x / 3.0) } else { 0.0 }
}

/// One output pixel's window: the first source pixel and the fixed-point weight of each.
struct Window {
    start: usize,
    weights: Vec<i32>,
}

/// The windows of one axis (Resample.c's `precompute_coeffs` and `normalize_coeffs_8bpc`).
struct Weights {
    windows: Vec<Window>,
}

impl Weights {
    fn new(in_size: usize, out_size: usize, kernel: Kernel) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let inverse_filter_scale = 1.0 / filter_scale;
        let support = kernel.support * filter_scale;
        let windows = (0..out_size)
            .map(|xx| {
                let center = (xx as f64 + 0.5) * scale;
                // `as` truncates towards zero, as C's (int) cast does.
                let min = ((center - support + 0.5) as i64).max(0) as usize;
                let max = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
                let raw: Vec<f64> = (min..max.max(min))
                    .map(|x| (kernel.filter)((x as f64 - center + 0.5) * inverse_filter_scale))
                    .collect();
                let total: f64 = raw.iter().sum();
                let one = f64::from(1u32 << PRECISION_BITS);
                let weights = raw
                    .iter()
                    .map(|w| if total != 0.0 { w / total } else { *w })
                    .map(|w| if w < 0.0 { (-0.5 + w * one) as i32 } else { (0.5 + w * one) as i32 })
                    .collect();
                Window { start: min, weights }
            })
            .collect();
        Self { windows }
    }
}

/// Rounds a fixed-point sum to 8 bits, clamped (Resample.c's `clip8`).
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

fn horizontal_pass<const C: usize>(image: &Pixels<'_, C>, weights: &Weights, rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * weights.windows.len() * C);
    for y in 0..rows {
        let row = image.row(y);
        for window in &weights.windows {
            let mut sums = [HALF; C];
            let pixels = row[window.start * C..].chunks_exact(C);
            for (pixel, weight) in pixels.zip(&window.weights) {
                for c in 0..C {
                    sums[c] += i32::from(pixel[c]) * weight;
                }
            }
            out.extend(sums.map(clip8));
        }
    }
    out
}

fn vertical_pass<const C: usize>(image: &Pixels<'_, C>, weights: &Weights) -> Vec<u8> {
    let row_len = image.width * C;
    let mut out = Vec::with_capacity(weights.windows.len() * row_len);
    let mut sums = vec![0i32; row_len];
    for window in &weights.windows {
        sums.fill(HALF);
        for (offset, weight) in window.weights.iter().enumerate() {
            let row = image.row(window.start + offset);
            for (sum, value) in sums.iter_mut().zip(row) {
                *sum += i32::from(*value) * weight;
            }
        }
        out.extend(sums.iter().map(|s| clip8(*s)));
    }
    out
}

/// Nearest neighbour as Pillow scales: the source position of output pixel `x` is
/// `floor(scale * 0.5 + x * scale)`, summed step by step in floating point as Pillow does.
fn nearest<const C: usize>(image: &Pixels<'_, C>, in_height: usize, to: (u32, u32)) -> Vec<u8> {
    let positions = |in_size: usize, out_size: u32| -> Vec<usize> {
        let step = in_size as f64 / f64::from(out_size);
        let mut position = step * 0.5;
        (0..out_size)
            .map(|_| {
                // Pillow leaves a position past the edge black; none is reached at these sizes.
                let index = (position as usize).min(in_size - 1);
                position += step;
                index
            })
            .collect()
    };
    let columns = positions(image.width, to.0);
    let mut out = Vec::with_capacity(to.0 as usize * to.1 as usize * C);
    for y in positions(in_height, to.1) {
        let row = image.row(y);
        for &x in &columns {
            out.extend_from_slice(&row[x * C..(x + 1) * C]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILTERS: [ResizeFilter; 6] = [
        ResizeFilter::Nearest,
        ResizeFilter::Box,
        ResizeFilter::Bilinear,
        ResizeFilter::Hamming,
        ResizeFilter::Bicubic,
        ResizeFilter::Lanczos,
    ];

    // Pillow's own output for every filter is checked in model::preprocess's tests, against
    // tests/fixtures/resize/ (scripts/make_resize_fixtures.py).

    #[test]
    fn a_flat_image_stays_flat_at_any_size() {
        let sizes = [(1, 1), (7, 3), (64, 48), (240, 240), (3, 500)];
        for filter in FILTERS {
            for &from in &sizes {
                for &to in &sizes {
                    let pixels = vec![173u8; from.0 as usize * from.1 as usize * 3];
                    let rgb = resize::<3>(&pixels, from, to, filter);
                    assert_eq!(rgb.len(), to.0 as usize * to.1 as usize * 3);
                    assert!(rgb.iter().all(|&p| p == 173), "{filter:?} {from:?} -> {to:?}");
                    let grey = resize::<1>(&pixels[..pixels.len() / 3], from, to, filter);
                    assert_eq!(grey, rgb[..rgb.len() / 3], "{filter:?} {from:?} -> {to:?}");
                }
            }
        }
    }

    #[test]
    fn an_image_without_pixels_gives_black_not_a_panic() {
        for filter in FILTERS {
            assert_eq!(resize::<3>(&[], (0, 5), (2, 2), filter), vec![0; 12]);
            assert_eq!(resize::<1>(&[], (7, 0), (3, 1), filter), vec![0; 3]);
        }
    }

    #[test]
    fn the_same_size_is_a_copy() {
        let pixels: Vec<u8> = (0..=255).cycle().take(5 * 4 * 3).collect();
        for filter in FILTERS {
            assert_eq!(resize::<3>(&pixels, (5, 4), (5, 4), filter), pixels);
        }
    }

    #[test]
    fn the_pass_order_follows_pillow_13() {
        assert!(vertical_first((236, 290), (240, 240)), "height shrinks, width grows");
        assert!(!vertical_first((512, 512), (240, 240)), "both shrink alike");
        assert!(!vertical_first((100, 20), (64, 48)), "height grows");
        assert!(vertical_first((200, 500), (100, 240)), "260 > 2 * 100");
        assert!(!vertical_first((200, 440), (100, 240)), "200 is not more than 2 * 100");
    }
}
