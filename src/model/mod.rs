//! The model side: finding the files, reconciling the spec with the graph, running ONNX
//! Runtime, and turning images into samples and scores into predictions. No HTTP here.

pub mod discovery;
pub mod engine;
pub mod postprocess;
pub mod preprocess;
pub mod runtime;
pub mod spec;

use std::time::{Duration, Instant};

use ort::environment::Environment;

use self::discovery::ModelFiles;
use self::engine::{EngineError, OnnxEngine, OnnxModel, SessionOptions};
use self::spec::{ModelConfig, Signature, SpecError, SpecFile};

/// A model opened in ONNX Runtime and reconciled with its spec, not yet warmed up.
pub struct OpenedModel {
    pub config: ModelConfig,
    pub engine: OnnxEngine,
    pub signature: Signature,
    pub load_time: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// Opens the model file and reconciles the graph with the spec (or, without one, derives
/// everything from the graph).
pub fn open(environment: &Environment, files: &ModelFiles, session: SessionOptions) -> Result<OpenedModel, OpenError> {
    let started = Instant::now();
    let model = OnnxModel::open(environment, &files.onnx, session)?;
    let signature = model.signature();
    let load_time = started.elapsed();

    let fallback_name = files.onnx.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let spec = files.spec.as_ref().map(|(_, spec)| spec.clone()).unwrap_or_else(|| {
        log::warn!("no model spec found; preprocessing and labels are derived from the ONNX graph alone");
        SpecFile::default()
    });
    let config = spec.resolve(&signature, files.base_dir(), &fallback_name)?;
    let engine = model.into_engine(&config);
    Ok(OpenedModel { config, engine, signature, load_time })
}
