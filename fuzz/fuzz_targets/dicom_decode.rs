//! DICOM Part 10 bytes through `dicom::decode` (every window choice) and
//! `Preprocessor::preprocess_frames`, for the default model's input and a grayscale NCHW one;
//! an input without the `DICM` magic at offset 128 gets a zero preamble and the magic in front.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| scorer_fuzz::checks::check_dicom(data));
