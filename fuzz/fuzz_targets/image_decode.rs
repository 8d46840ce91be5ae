//! Raw image bytes through `Preprocessor::preprocess`, for the default model's input (NHWC RGB
//! bicubic 240x240) and a grayscale NCHW bilinear one.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| scorer_fuzz::checks::check_image(data));
