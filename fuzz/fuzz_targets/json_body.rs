//! A JSON request body (`{"image": b64}` / `{"images": [...]}`): parsed, each base64 image decoded,
//! the first few preprocessed.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| scorer_fuzz::checks::check_json(data));
