//! Replays the inputs saved under `fuzz/regressions/<target>/` — what the fuzzer found, minimised,
//! and edge cases among its seeds — through the same checks as the fuzz targets
//! (`fuzz/src/checks.rs`, included here), so the test suite keeps them handled without cargo-fuzz
//! or the nightly toolchain. Each input must be accepted or refused with a proper error: no
//! panic, no violated property, and no decoding beyond the pixel limit.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/src/checks.rs"]
mod checks;

/// Where `needle` first occurs in `haystack` (`checks` asks its including crate for this).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn saved_inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no saved inputs in {}", dir.display());
    files
}

/// Runs every saved input of `target` through `check`, and names each one that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let mut failures = Vec::new();
    for path in saved_inputs(target) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failures.push(format!("{}: {message}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{target}: {} saved inputs failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn json_bodies() {
    replay("json_body", checks::check_json);
}

#[test]
fn base64_texts() {
    replay("base64", checks::check_base64);
}

#[test]
fn multipart_bodies() {
    replay("multipart", checks::check_multipart);
}

#[test]
fn images() {
    replay("image_decode", checks::check_image);
}

#[test]
fn v2_inference_bodies() {
    replay("v2_infer", checks::check_v2_infer);
}

#[test]
fn dicom_files() {
    replay("dicom_decode", checks::check_dicom);
}
