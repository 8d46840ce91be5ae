//! Shared code of the fuzz targets: the properties live in `checks.rs`, which the test suite
//! (`tests/fuzz_regressions.rs`) includes as well.

pub mod checks;

/// Where `needle` first occurs in `haystack` (used by `checks`).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}
