//! An Open Inference Protocol inference body, with or without binary tensor data after the JSON:
//! checked against a small model, and the output written for it.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| scorer_fuzz::checks::check_v2_infer(data));
