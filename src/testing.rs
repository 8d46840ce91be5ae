//! Test support shared by the unit tests: a fake engine whose answer follows its input, a
//! model config around it, classifier options and tiny images. No ONNX Runtime behind any of it.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use image::{ImageFormat, Rgb, RgbImage};

use crate::classifier::ClassifierOptions;
use crate::input::EncodedImage;
use crate::model::engine::{EngineError, InferenceEngine};
use crate::model::spec::{ModelConfig, Signature, SpecFile, TensorInfo};

/// Scores each sample by its mean red, green and blue value: a model whose answer follows
/// its input, with no ONNX Runtime behind it.
pub struct MeanColourEngine;

impl InferenceEngine for MeanColourEngine {
    fn infer(&mut self, input: &[f32], n: usize) -> Result<Vec<f32>, EngineError> {
        let sample_len = input.len() / n;
        let pixels = (sample_len / 3) as f32;
        Ok(input
            .chunks_exact(sample_len)
            .flat_map(|sample| (0..3).map(move |c| sample.iter().skip(c).step_by(3).sum::<f32>() / pixels * 10.0))
            .collect())
    }

    fn classes(&self) -> usize {
        3
    }
}

pub fn config(spec: &str) -> ModelConfig {
    let tensor =
        |name: &str, shape: &[Option<i64>]| TensorInfo { name: name.to_owned(), shape: shape.to_vec(), is_f32: true };
    let graph = Signature {
        inputs: vec![tensor("pixels", &[None, Some(8), Some(8), Some(3)])],
        outputs: vec![tensor("scores", &[None, Some(3)])],
    };
    let spec: SpecFile = toml::from_str(spec).unwrap();
    spec.resolve(&graph, Path::new("."), "mean-colour").unwrap()
}

pub fn options() -> ClassifierOptions {
    ClassifierOptions {
        max_batch_size: 4,
        max_batch_wait: Duration::ZERO,
        queue_capacity: 16,
        max_image_pixels: 1 << 20,
        max_images_per_request: 8,
        preprocess_threads: 2,
        dicom_window: crate::model::dicom::WindowChoice::First,
        explain_max_grid: 3,
    }
}

pub fn png(colour: [u8; 3]) -> EncodedImage {
    let mut out = Cursor::new(Vec::new());
    RgbImage::from_pixel(20, 10, Rgb(colour)).write_to(&mut out, ImageFormat::Png).unwrap();
    EncodedImage::Raw(out.into_inner().into())
}

/// A fresh folder under the system temp folder, removed when dropped. `tag` must be unique among
/// the tests (they run in parallel in one process).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("scorer-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `content` to `rel` below the folder, creating the folders on the way.
    pub fn file(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
