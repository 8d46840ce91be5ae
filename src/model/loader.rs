//! The one way to open a model: the files found by discovery and the engine options in, the
//! reconciled spec, the graph's signature and the opened engines out. `serve`, `bench` and
//! `evaluate` all come through here, so a new engine option is a change in one place.
//!
//! With the optimised-model cache on (`model::cache`), the graph ONNX Runtime optimised for this
//! machine is loaded as it is, which keeps the load's memory peak low; any doubt about the cached
//! graph (its files, or its answer on a fixed input) falls back to the original model file.

use std::path::Path;
use std::time::{Duration, Instant};

use ort::environment::Environment;

use super::cache::{self, CacheOptions, Key, Reference};
use super::discovery::ModelFiles;
use super::engine::{EngineError, Graph, InferenceEngine, OnnxEngine, OnnxModel, SessionOptions};
use super::spec::{ModelConfig, Signature, SpecError, SpecFile};

/// How to open the model's engines.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub session: SessionOptions,
    /// Sessions opened side by side, each with its own copy of the model (at least one).
    pub sessions: usize,
    /// Where optimised graphs are kept between starts; `None` optimises on every load.
    pub cache: Option<CacheOptions>,
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

/// Opens the model (from the cache when it can), reconciles the graph with the spec (or, without
/// one, derives everything from the graph) and opens the further sessions. Logs the CPU features,
/// the graph's inputs and outputs.
pub fn load(environment: &Environment, files: &ModelFiles, options: &EngineOptions) -> Result<LoadedModel, OpenError> {
    let features = super::cpu::features();
    log::info!(
        "CPU features for ONNX Runtime's kernels: {}",
        if features.is_empty() { "none detected".to_owned() } else { features.join(" ") }
    );
    if let Some(cached) = options.cache.as_ref().and_then(|c| cache::prepare(c, &files.onnx, files.base_dir())) {
        match open_engines(environment, files, &cached.model, Graph::Optimised, options) {
            Ok(mut loaded) => match check_reference(&mut loaded, &cached.reference) {
                Ok(()) => return Ok(loaded),
                Err(reason) => {
                    log::warn!("the cached graph {reason}; removing it and loading the original model");
                    cached.discard();
                }
            },
            Err(error) => {
                log::warn!("the cached graph does not load ({error}); removing it and loading the original model");
                cached.discard();
            }
        }
    }
    open_engines(environment, files, &files.onnx, Graph::Original, options)
}

fn open_engines(
    environment: &Environment,
    files: &ModelFiles,
    graph_file: &Path,
    graph: Graph<'_>,
    options: &EngineOptions,
) -> Result<LoadedModel, OpenError> {
    let started = Instant::now();
    let first = OnnxModel::open_graph(environment, graph_file, options.session, graph)?;
    let load_time = started.elapsed();
    let signature = first.signature();
    for input in &signature.inputs {
        log::info!("model input `{}`: shape {}", input.name, format_shape(&input.shape));
    }
    for output in &signature.outputs {
        log::info!("model output `{}`: shape {}", output.name, format_shape(&output.shape));
    }
    let config = resolve_config(files, &signature)?;
    log::info!(
        "opened model {} from {} (spec: {}{}) in {} ms",
        config.name,
        files.onnx.display(),
        files.spec.as_ref().map_or_else(|| "none".to_owned(), |(path, _)| path.display().to_string()),
        if graph == Graph::Optimised { "; the graph optimised for this machine, from the cache" } else { "" },
        load_time.as_millis(),
    );

    let mut engines = vec![first.into_engine(&config)];
    for _ in 1..options.sessions.max(1) {
        engines.push(OnnxModel::open_graph(environment, graph_file, options.session, graph)?.into_engine(&config));
    }
    Ok(LoadedModel { config, signature, engines, load_time })
}

/// The spec reconciled with the graph; without a spec, everything from the graph.
fn resolve_config(files: &ModelFiles, signature: &Signature) -> Result<ModelConfig, SpecError> {
    let fallback_name = files.onnx.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let spec = files.spec.as_ref().map(|(_, spec)| spec.clone()).unwrap_or_else(|| {
        log::warn!("no model spec found; preprocessing and labels are derived from the ONNX graph alone");
        SpecFile::default()
    });
    spec.resolve(signature, files.base_dir(), &fallback_name)
}

/// The cached graph must answer the fixed input as the graph it was saved from did.
fn check_reference(loaded: &mut LoadedModel, reference: &Reference) -> Result<(), String> {
    let sample_len = loaded.config.input.sample_len();
    if sample_len != reference.sample_len {
        // A spec that sizes a dynamic input differently from when the entry was made.
        return Err(format!("was checked with {} input values, this spec gives {sample_len}", reference.sample_len));
    }
    let input = cache::reference_input(sample_len);
    let engine = loaded.engines.first_mut().ok_or("opened no session")?;
    let output = engine.infer(&input, 1).map_err(|e| format!("fails on the reference input ({e})"))?;
    if cache::matches_reference(reference, &output) {
        Ok(())
    } else {
        Err("answers the reference input differently from when it was saved".to_owned())
    }
}

/// `scorer optimize-model`: the child process of `cache::prepare`. Loads the original model with
/// every optimisation, which writes the optimised graph and its weights into `staging`, records
/// the graph's answer on the reference input, and exits: its memory peak ends with it.
pub fn optimize_into(
    environment: &Environment,
    files: &ModelFiles,
    session: SessionOptions,
    staging: &Path,
) -> Result<(), String> {
    let started = Instant::now();
    let saved = staging.join(cache::MODEL_FILE);
    let graph = Graph::OriginalSavedTo { model: &saved, weights: cache::WEIGHTS_FILE };
    let model = OnnxModel::open_graph(environment, &files.onnx, session, graph).map_err(|e| e.to_string())?;
    let config = resolve_config(files, &model.signature()).map_err(|e| e.to_string())?;
    let sample_len = config.input.sample_len();
    let mut engine = model.into_engine(&config);
    let output = engine.infer(&cache::reference_input(sample_len), 1).map_err(|e| e.to_string())?;
    let key = Key::of(&files.onnx).map_err(|e| format!("cannot read {}: {e}", files.onnx.display()))?;
    cache::write_entry(staging, key, Reference { sample_len, output })?;
    log::info!("optimised {} for this machine in {} ms", files.onnx.display(), started.elapsed().as_millis());
    Ok(())
}

fn format_shape(shape: &[Option<i64>]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.map_or_else(|| "?".to_owned(), |d| d.to_string())).collect();
    format!("[{}]", dims.join(", "))
}
