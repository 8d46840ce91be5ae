//! `decode_base64` on arbitrary text, and on every encoding clients send of arbitrary bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| scorer_fuzz::checks::check_base64(data));
