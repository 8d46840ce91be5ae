//! The inference engine: runs a batch of preprocessed samples through the model. Everything that
//! knows about ONNX Runtime lives here, behind a small synchronous trait, so that the batcher can be
//! tested without a model and other engines (GPU execution providers) can slot in later.

use std::path::Path;

use ort::{
    environment::Environment,
    session::{Session, builder::GraphOptimizationLevel},
    value::TensorRef,
};

use super::spec::{BatchDim, InputConfig, ModelConfig, Signature, TensorInfo};

/// Runs batches. Owned by one thread at a time (`Session::run` takes `&mut self`).
pub trait InferenceEngine: Send + 'static {
    /// `input` holds `n` samples back to back in the model's input layout. Returns `n` rows of
    /// raw output scores, row-major.
    fn infer(&mut self, input: &[f32], n: usize) -> Result<Vec<f32>, EngineError>;

    /// Values per output row.
    fn classes(&self) -> usize;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("could not load the model {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("inference failed: {0}")]
    Run(String),
}

/// Session options the operator can tune.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOptions {
    /// 0 lets ONNX Runtime choose (one thread per physical core).
    pub intra_op_threads: usize,
}

/// An ONNX Runtime session on a model file, before it is bound to a [`ModelConfig`].
pub struct OnnxModel {
    session: Session,
}

/// How a model file is turned into a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graph<'a> {
    /// An ordinary ONNX file: ONNX Runtime optimises the graph at load (fusions, layout changes).
    Original,
    /// Optimise it and also write the optimised graph to `model`, its weights to the file
    /// `weights` beside it (`model::cache`).
    OriginalSavedTo { model: &'a Path, weights: &'a str },
    /// A graph saved optimised for this machine: loaded as it is, with optimisation off, which
    /// skips the load's transient copies of the weights.
    Optimised,
}

impl OnnxModel {
    pub fn open(environment: &Environment, path: &Path, options: SessionOptions) -> Result<Self, EngineError> {
        Self::open_graph(environment, path, options, Graph::Original)
    }

    pub fn open_graph(
        environment: &Environment,
        path: &Path,
        options: SessionOptions,
        graph: Graph<'_>,
    ) -> Result<Self, EngineError> {
        let load_error = |reason: String| EngineError::Load { path: path.display().to_string(), reason };
        let level = match graph {
            Graph::Original | Graph::OriginalSavedTo { .. } => GraphOptimizationLevel::All,
            Graph::Optimised => GraphOptimizationLevel::Disable,
        };
        let mut builder = Session::builder(environment)
            .map_err(|e| load_error(e.to_string()))?
            .with_optimization_level(level)
            .map_err(|e| load_error(e.to_string()))?;
        if let Graph::OriginalSavedTo { model, weights } = graph {
            // Weights in a file of their own: ONNX Runtime maps that file when it loads the saved
            // graph instead of copying the weights out of the protobuf.
            let entries = [
                ("session.optimized_model_external_initializers_file_name", weights),
                ("session.optimized_model_external_initializers_min_size_in_bytes", "1024"),
            ];
            builder = builder.with_optimized_model_path(model).map_err(|e| load_error(e.to_string()))?;
            for (key, value) in entries {
                builder = builder.with_config_entry(key, value).map_err(|e| load_error(e.to_string()))?;
            }
        }
        // The batch size varies from run to run. With the memory pattern on, ONNX Runtime plans
        // and keeps a block per input shape seen (measured on VGG16: peak RSS at batch 8 of
        // 631 MB with it, 408 MB without, at the same speed).
        builder = builder.with_memory_pattern(false).map_err(|e| load_error(e.to_string()))?;
        if options.intra_op_threads > 0 {
            builder = builder.with_intra_threads(options.intra_op_threads).map_err(|e| load_error(e.to_string()))?;
        }
        let session = builder.commit_from_file(path).map_err(|e| load_error(e.to_string()))?;
        Ok(Self { session })
    }

    /// The graph's inputs and outputs.
    pub fn signature(&self) -> Signature {
        let describe = |outlet: &ort::value::Outlet| TensorInfo {
            name: outlet.name().to_owned(),
            shape: outlet
                .dtype()
                .tensor_shape()
                .map(|shape| shape.iter().map(|d| (*d >= 0).then_some(*d)).collect())
                .unwrap_or_default(),
            is_f32: outlet.dtype().tensor_type() == Some(ort::value::TensorElementType::Float32),
        };
        Signature {
            inputs: self.session.inputs().iter().map(describe).collect(),
            outputs: self.session.outputs().iter().map(describe).collect(),
        }
    }

    pub fn into_engine(self, config: &ModelConfig) -> OnnxEngine {
        OnnxEngine {
            session: self.session,
            input: config.input.clone(),
            output_name: config.output.name.clone(),
            classes: config.output.classes,
            batch: config.batch,
            padded: Vec::new(),
        }
    }
}

pub struct OnnxEngine {
    session: Session,
    input: InputConfig,
    output_name: String,
    classes: usize,
    batch: BatchDim,
    /// Reused input buffer for models whose batch size is fixed and larger than `n`.
    padded: Vec<f32>,
}

impl InferenceEngine for OnnxEngine {
    fn infer(&mut self, input: &[f32], n: usize) -> Result<Vec<f32>, EngineError> {
        let sample_len = self.input.sample_len();
        if n == 0 || input.len() != n * sample_len {
            return Err(EngineError::Run(format!(
                "expected {n} samples of {sample_len} values, got {} values",
                input.len()
            )));
        }
        let (rows, data) = match self.batch {
            BatchDim::Fixed(fixed) if n < fixed => {
                self.padded.clear();
                self.padded.extend_from_slice(input);
                self.padded.resize(fixed * sample_len, 0.0);
                (fixed, self.padded.as_slice())
            }
            BatchDim::Fixed(fixed) if n > fixed => {
                return Err(EngineError::Run(format!("the model takes at most {fixed} samples per run, got {n}")));
            }
            _ => (n, input),
        };

        let run_error = |e: ort::Error| EngineError::Run(e.to_string());
        let tensor = TensorRef::from_array_view((self.input.batch_shape(rows), data)).map_err(run_error)?;
        let outputs = self.session.run(ort::inputs![self.input.name.as_str() => tensor]).map_err(run_error)?;
        let output = outputs
            .get(&self.output_name)
            .ok_or_else(|| EngineError::Run(format!("the model produced no output `{}`", self.output_name)))?;
        let (_, scores) = output.try_extract_tensor::<f32>().map_err(run_error)?;
        if scores.len() != rows * self.classes {
            return Err(EngineError::Run(format!(
                "expected {} output values, the model produced {}",
                rows * self.classes,
                scores.len()
            )));
        }
        Ok(scores[..n * self.classes].to_vec())
    }

    fn classes(&self) -> usize {
        self.classes
    }
}
