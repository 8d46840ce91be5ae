//! The INT8 gate: the quantised model (model-int8/, made by scripts/setup.sh) must give the fp32
//! model's answers on images it was not calibrated on — every held-out real MRI image and at
//! least 99 % of 200+ augmented variants of them — measured by `scorer evaluate
//! --compare-model-dir`, the tool a release pipeline uses.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::helpers::TempDir;
use crate::helpers::evaluation::{evaluate, read_report};
use crate::helpers::repo_root;

/// The largest probability difference allowed on the real images.
const MAX_ABS_DP_ORIGINALS: f64 = 0.05;

fn int8_dir() -> PathBuf {
    repo_root().join("model-int8")
}

fn gate_dir(set: &str) -> PathBuf {
    repo_root().join("tests/data/int8-gate").join(set)
}

/// The calibration images, as scripts/make_int8.py recorded them in the model's build stamp.
fn calibration_stems() -> Vec<String> {
    let stamp = int8_dir().join(".stamp.json");
    let text = std::fs::read_to_string(&stamp)
        .unwrap_or_else(|e| panic!("{}: {e}. Run scripts/setup.sh to build the INT8 model", stamp.display()));
    let stamp: Value = serde_json::from_str(&text).unwrap();
    let images = stamp["inputs"]["calibration_images"].as_object().expect("the stamp lists the calibration images");
    assert_eq!(images.len(), 4, "one calibration image per class");
    images.keys().map(|path| Path::new(path).file_stem().unwrap().to_string_lossy().into_owned()).collect()
}

/// Runs the comparison on one gate set and returns the report.
fn compare(set: &str, min_agreement: &str) -> Value {
    let out = TempDir::new(&format!("int8-{set}"));
    let run = evaluate(&[
        &gate_dir(set).display().to_string(),
        "--compare-model-dir",
        &int8_dir().display().to_string(),
        "--min-agreement",
        min_agreement,
        "--out",
        &out.path().display().to_string(),
    ]);
    println!("{}", run.stdout);
    assert_eq!(run.code, Some(0), "the INT8 gate failed on {set}: {run}");
    read_report(out.path())
}

#[tokio::test]
async fn int8_agrees_with_fp32_on_every_held_out_image_and_on_99_percent_of_the_variants() {
    // Nothing the gate measures on was seen by the calibration, not even as a variant.
    let calibration = calibration_stems();
    let gate_files: Vec<String> = walk(&repo_root().join("tests/data/int8-gate"));
    for file in &gate_files {
        assert!(
            !calibration.iter().any(|stem| file.contains(stem.as_str())),
            "{file} derives from a calibration image"
        );
    }

    let originals = compare("originals", "1.0");
    let comparison = &originals["comparison"];
    assert_eq!(comparison["compared"], 13, "the 13 real images not used for calibration");
    assert_eq!(comparison["agreement"], 1.0);
    let max_abs_dp = comparison["max_abs_dp"].as_f64().unwrap();
    assert!(max_abs_dp <= MAX_ABS_DP_ORIGINALS, "max |Δp| {max_abs_dp} on the real images");
    assert_eq!(originals["model"]["metrics"]["accuracy"], 1.0, "fp32 gets every held-out image right");
    assert_eq!(comparison["model"]["metrics"]["accuracy"], 1.0, "and so does INT8");
    assert_eq!(comparison["model"]["source"]["name"], "brain-tumor-vgg16-int8");

    let variants = compare("variants", "0.99");
    let comparison = &variants["comparison"];
    let compared = comparison["compared"].as_u64().unwrap();
    assert!(compared >= 200, "{compared} variants");
    assert!(comparison["agreement"].as_f64().unwrap() >= 0.99, "{}", comparison["agreement"]);
    assert_eq!(variants["model"]["failed"], 0);
    let figure = |key: &str| comparison[key].as_f64().unwrap();
    println!(
        "INT8 gate: originals 13/13, max |Δp| {max_abs_dp:.4}; variants {}/{compared} agree, max |Δp| {:.4}; INT8 {:.2}× the fp32 images/s",
        comparison["agreeing"],
        figure("max_abs_dp"),
        figure("speed_ratio")
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}. Run scripts/setup.sh --test-data", dir.display()))
    {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    files
}
