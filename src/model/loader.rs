//! The one way to open a model: the files found by discovery and the engine options in, the
//! reconciled spec, the graph's signature and the opened engines out. `serve`, `bench` and
//! `evaluate` all come through here, so a new engine option is a change in one place.

use std::time::{Duration, Instant};

use ort::environment::Environment;

use super::discovery::ModelFiles;
use super::engine::{EngineError, OnnxEngine, OnnxModel, SessionOptions};
use super::spec::{ModelConfig, Signature, SpecError, SpecFile};

/// How to open the model's engines.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    pub session: SessionOptions,
    /// Sessions opened side by side, each with its own copy of the model (at least one).
    pub sessions: usize,
}

/// A model opened in ONNX Runtime and reconciled with its spec, not yet warmed up.
pub struct LoadedModel {
    pub config: ModelConfig,
    pub signature: Signature,
    /// One per session, each to be owned by its own inference thread.
    pub engines: Vec<OnnxEngine>,
    /// How long opening the first session took.
    pub load_time: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// Opens the model file, reconciles the graph with the spec (or, without one, derives everything
/// from the graph) and opens the further sessions. Logs the graph's inputs and outputs.
pub fn load(environment: &Environment, files: &ModelFiles, options: &EngineOptions) -> Result<LoadedModel, OpenError> {
    let features = super::cpu::features();
    log::info!(
        "CPU features for ONNX Runtime's kernels: {}",
        if features.is_empty() { "none detected".to_owned() } else { features.join(" ") }
    );
    let started = Instant::now();
    let first = OnnxModel::open(environment, &files.onnx, options.session)?;
    let load_time = started.elapsed();
    let signature = first.signature();
    for input in &signature.inputs {
        log::info!("model input `{}`: shape {}", input.name, format_shape(&input.shape));
    }
    for output in &signature.outputs {
        log::info!("model output `{}`: shape {}", output.name, format_shape(&output.shape));
    }

    let fallback_name = files.onnx.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let spec = files.spec.as_ref().map(|(_, spec)| spec.clone()).unwrap_or_else(|| {
        log::warn!("no model spec found; preprocessing and labels are derived from the ONNX graph alone");
        SpecFile::default()
    });
    let config = spec.resolve(&signature, files.base_dir(), &fallback_name)?;
    log::info!(
        "opened model {} from {} (spec: {}) in {} ms",
        config.name,
        files.onnx.display(),
        files.spec.as_ref().map_or_else(|| "none".to_owned(), |(path, _)| path.display().to_string()),
        load_time.as_millis(),
    );

    let mut engines = vec![first.into_engine(&config)];
    for _ in 1..options.sessions.max(1) {
        engines.push(OnnxModel::open(environment, &files.onnx, options.session)?.into_engine(&config));
    }
    Ok(LoadedModel { config, signature, engines, load_time })
}

fn format_shape(shape: &[Option<i64>]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.map_or_else(|| "?".to_owned(), |d| d.to_string())).collect();
    format!("[{}]", dims.join(", "))
}
