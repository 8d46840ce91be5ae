//! `extract_images` on a body whose Content-Type is the input's first line (multipart in the seeds),
//! then every image's bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| scorer_fuzz::checks::check_multipart(data));
