//! The optimised-model cache: the first start optimises in a child process, later starts load the
//! saved graph with a lower memory peak and the same answers; a damaged, stale or unusable cache
//! is detected, rebuilt or bypassed, and never stops the server.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::helpers::{Launch, TempDir, TestApp, mri, probabilities};

const CACHE_DIR: &str = "SCORER_OPTIMIZED_MODEL_CACHE_DIR";

async fn start_with_cache(dir: &Path) -> TestApp {
    Launch::new().env(CACHE_DIR, dir.display()).spawn().await
}

/// The one entry in the cache folder.
fn entry(cache: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

/// Peak resident memory of the server process so far (VmHWM), in MB.
fn peak_rss_mb(app: &TestApp) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).unwrap();
    let kib: f64 =
        status.lines().find(|l| l.starts_with("VmHWM:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

async fn answer(app: &TestApp) -> Value {
    app.classify(mri("Te-me_0018.jpg")).await["predictions"][0].clone()
}

fn assert_same_answer(a: &Value, b: &Value) {
    assert_eq!(a["label"], b["label"]);
    let (a, b) = (probabilities(a), probabilities(b));
    for (label, p) in &a {
        assert!((p - b[label]).abs() < 1e-5, "{label}: {p} vs {}", b[label]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_optimises_in_a_child_and_later_starts_load_lean_with_the_same_answers() {
    let cache = TempDir::new("cache-lean");
    let uncached = Launch::new().env("SCORER_OPTIMIZED_MODEL_CACHE", "false").spawn().await;
    let uncached_peak = peak_rss_mb(&uncached);
    let reference = answer(&uncached).await;
    assert!(!uncached.logs().contains("cache"), "{}", uncached.logs());
    drop(uncached);

    let first = start_with_cache(cache.path()).await;
    let logs = first.logs_containing("from the cache)").await;
    assert!(logs.contains("optimising the model for this machine in a child process"), "{logs}");
    assert!(logs.contains("the graph optimised for this machine, from the cache"), "{logs}");
    assert_same_answer(&answer(&first).await, &reference);
    drop(first);
    let entry = entry(cache.path());
    for file in ["model.onnx", "weights.bin", "entry.json"] {
        assert!(entry.join(file).is_file(), "{file} missing from {}", entry.display());
    }

    let second = start_with_cache(cache.path()).await;
    let logs = second.logs_containing("from the cache)").await;
    assert!(logs.contains("loading the optimised graph from the cache"), "{logs}");
    assert!(!logs.contains("child process"), "a cache hit needs no optimisation:\n{logs}");
    assert_same_answer(&answer(&second).await, &reference);
    // The load's transient copies of the weights are gone: measured 129 MB against 198 MB.
    let cached_peak = peak_rss_mb(&second);
    assert!(
        cached_peak < 0.8 * uncached_peak,
        "peak RSS with the cache {cached_peak:.0} MB, without {uncached_peak:.0} MB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_stale_entry_is_detected_removed_and_rebuilt() {
    let cache = TempDir::new("cache-damaged");
    let reference = answer(&start_with_cache(cache.path()).await).await;
    let entry = entry(cache.path());

    // A damaged weights file: its sha256 no longer matches.
    let weights = entry.join("weights.bin");
    let mut bytes = std::fs::read(&weights).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&weights, bytes).unwrap();
    let app = start_with_cache(cache.path()).await;
    let logs = app.logs_containing("from the cache)").await;
    assert!(logs.contains("is stale or damaged (weights.bin does not match its sha256); rebuilding it"), "{logs}");
    assert_same_answer(&answer(&app).await, &reference);
    drop(app);

    // An entry made for another ONNX Runtime build.
    let record_path = entry.join("entry.json");
    let mut record: Value = serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    record["key"]["onnx_runtime"] = Value::from("ORT Build Info: an older one");
    std::fs::write(&record_path, record.to_string()).unwrap();
    let app = start_with_cache(cache.path()).await;
    let logs = app.logs_containing("from the cache)").await;
    assert!(logs.contains("made for another model, ONNX Runtime or CPU"), "{logs}");
    drop(app);

    // Files intact, but the graph answers the fixed input differently than recorded (as a graph
    // laid out for another CPU would): removed, and the original model serves.
    let mut record: Value = serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    record["reference"]["output"] = serde_json::json!([0.97, 0.01, 0.01, 0.01]);
    std::fs::write(&record_path, record.to_string()).unwrap();
    let app = start_with_cache(cache.path()).await;
    let logs = app.logs_containing("loading the original model").await;
    assert!(logs.contains("answers the reference input differently from when it was saved"), "{logs}");
    assert_same_answer(&answer(&app).await, &reference);
    assert!(!entry.exists(), "the mismatching entry was removed");
}

#[tokio::test]
async fn a_cache_folder_that_cannot_be_used_does_not_stop_the_server() {
    let dir = TempDir::new("cache-unusable");
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"").unwrap();
    let app = Launch::new().env(CACHE_DIR, file.join("cache").display()).spawn().await;
    let logs = app.logs_containing("cannot be used").await;
    assert!(logs.contains("loading the model without it"), "{logs}");
    assert_eq!(answer(&app).await["label"], "meningioma");
}
