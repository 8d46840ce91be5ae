//! The scoring façade: encoded images in, labelled predictions out. Loads and warms up the model,
//! preprocesses on the blocking pool, batches through the inference worker, and postprocesses.
//! Knows nothing about HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ort::environment::Environment;
use tokio::sync::Semaphore;

use crate::batching::{BatchConfig, BatchError, Batcher};
use crate::input::{Base64Error, EncodedImage};
use crate::metrics::Metrics;
use crate::model::discovery::ModelFiles;
use crate::model::engine::{EngineError, InferenceEngine, OnnxModel, SessionOptions};
use crate::model::postprocess::{Postprocessor, Prediction};
use crate::model::preprocess::{ImageError, Preprocessor};
use crate::model::spec::{BatchDim, ModelConfig, OutputKind};
use crate::model::{self, OpenError, OpenedModel};

#[derive(Debug, Clone, Copy)]
pub struct ClassifierOptions {
    pub session: SessionOptions,
    /// Sessions running side by side, each on its own thread with its own copy of the model.
    pub sessions: usize,
    pub max_batch_size: usize,
    pub max_batch_wait: Duration,
    pub queue_capacity: usize,
    pub max_image_pixels: u64,
    pub max_images_per_request: usize,
    /// Images decoded at once; more wait their turn (admission already bounds the queue).
    pub preprocess_threads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the warm-up inference failed, so the model cannot serve: {0}")]
    WarmUp(EngineError),
    #[error("could not start the inference thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Why a scoring request failed. The HTTP layer maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("the request holds no image")]
    NoImages,
    #[error("the request holds {count} images; at most {max} are accepted")]
    TooManyImages { count: usize, max: usize },
    #[error("image {index}: {source}")]
    Base64 { index: usize, source: Base64Error },
    #[error("image {index}: {source}")]
    Image { index: usize, source: ImageError },
    #[error("the server is at capacity; retry shortly")]
    Overloaded,
    #[error("the request was not answered before its deadline (request_timeout_ms)")]
    Timeout,
    #[error("inference failed")]
    Inference(#[source] BatchError),
}

/// Predictions for the images of one request, in request order.
#[derive(Debug)]
pub struct Classification {
    pub predictions: Vec<Prediction>,
    /// The largest model batch any of the images ran in.
    pub batch_size: usize,
}

pub struct Classifier {
    config: ModelConfig,
    preprocessor: Arc<Preprocessor>,
    /// Bounds concurrent decoding: one thread per core is as fast as decoding gets, and every
    /// further thread only adds memory (its own buffers and malloc arena) and contention.
    preprocess_slots: Arc<Semaphore>,
    /// Bounds the decoded samples held in memory (each is the model's whole input for one image,
    /// 0.7 MB for VGG16): images are decoded only when a slot is free and keep it until
    /// inference has answered. Admitted requests beyond that wait as their encoded bytes.
    sample_slots: Arc<Semaphore>,
    postprocessor: Postprocessor,
    batcher: Batcher,
    max_images_per_request: usize,
}

impl Classifier {
    /// Opens the model, reconciles it with its spec, runs a warm-up inference and starts the
    /// inference worker. Logs what it loaded and how long each step took.
    pub fn load(
        environment: &Environment,
        files: &ModelFiles,
        options: &ClassifierOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LoadError> {
        let OpenedModel { mut config, mut engine, signature, load_time } =
            model::open(environment, files, options.session)?;

        let warm_up_started = Instant::now();
        let sample = vec![0.0; config.input.sample_len()];
        let row = engine.infer(&sample, 1).map_err(LoadError::WarmUp)?;
        let warm_up_time = warm_up_started.elapsed();
        let kind = *config.output.kind.get_or_insert_with(|| {
            let detected = OutputKind::detect(&row);
            log::info!("the spec does not say whether outputs are probabilities or logits; the warm-up output looks like {detected:?}");
            detected
        });

        for input in &signature.inputs {
            log::info!("model input `{}`: shape {}", input.name, format_shape(&input.shape));
        }
        for output in &signature.outputs {
            log::info!("model output `{}`: shape {}", output.name, format_shape(&output.shape));
        }
        log::info!(
            "loaded model {} from {} (spec: {}) in {} ms; warm-up inference took {} ms",
            config.name,
            files.onnx.display(),
            files.spec.as_ref().map_or_else(|| "none".to_owned(), |(path, _)| path.display().to_string()),
            load_time.as_millis(),
            warm_up_time.as_millis(),
        );

        let max_batch_size = match config.batch {
            BatchDim::Dynamic => options.max_batch_size,
            BatchDim::Fixed(fixed) => options.max_batch_size.min(fixed),
        };
        log::info!(
            "{} classes, {:?} {}x{} {:?} input, batch dimension {:?}: batching up to {max_batch_size}",
            config.output.classes,
            config.input.layout,
            config.input.width,
            config.input.height,
            config.input.color,
            config.batch,
        );
        let preprocessor = Arc::new(Preprocessor::new(config.input.clone(), options.max_image_pixels));
        let postprocessor = Postprocessor::new(config.labels.clone(), kind, config.top_k);
        let batch =
            BatchConfig { max_batch_size, max_wait: options.max_batch_wait, queue_capacity: options.queue_capacity };
        let mut engines = vec![engine];
        for _ in 1..options.sessions.max(1) {
            let mut extra = OnnxModel::open(environment, &files.onnx, options.session)?.into_engine(&config);
            extra.infer(&sample, 1).map_err(LoadError::WarmUp)?;
            engines.push(extra);
        }
        if engines.len() > 1 {
            log::info!("{} ONNX Runtime sessions run side by side", engines.len());
        }
        crate::memory::release_free_memory();
        let batcher = Batcher::spawn(engines, batch, metrics)?;
        Ok(Self {
            config,
            preprocessor,
            preprocess_slots: Arc::new(Semaphore::new(options.preprocess_threads.max(1))),
            sample_slots: Arc::new(Semaphore::new(sample_slots(options, max_batch_size))),
            postprocessor,
            batcher,
            max_images_per_request: options.max_images_per_request,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Classifies the images, in order. Refuses at once when the queue is full; gives up at
    /// `deadline`.
    pub async fn classify(&self, images: Vec<EncodedImage>, deadline: Instant) -> Result<Classification, ScoreError> {
        let count = images.len();
        if count == 0 {
            return Err(ScoreError::NoImages);
        }
        if count > self.max_images_per_request {
            return Err(ScoreError::TooManyImages { count, max: self.max_images_per_request });
        }
        let admission = self.batcher.try_admit(count).ok_or(ScoreError::Overloaded)?;
        let samples = tokio::time::timeout_at(deadline.into(), async {
            // Held until inference has answered; the semaphore is never closed.
            let slots = Arc::clone(&self.sample_slots).acquire_many_owned(count as u32).await.ok();
            Ok::<_, ScoreError>((slots, self.preprocess_all(images).await?))
        })
        .await
        .map_err(|_| ScoreError::Timeout)??;
        let (_sample_slots, samples) = samples;
        let scored = self.batcher.run(&admission, samples, deadline).await.map_err(|error| match error {
            BatchError::Expired => ScoreError::Timeout,
            other => ScoreError::Inference(other),
        })?;

        let batch_size = scored.iter().map(|s| s.batch_size).max().unwrap_or(0);
        let predictions = scored.iter().map(|s| self.postprocessor.predict(&s.scores)).collect();
        Ok(Classification { predictions, batch_size })
    }

    /// Decodes and preprocesses every image on the blocking pool, in parallel.
    async fn preprocess_all(&self, images: Vec<EncodedImage>) -> Result<Vec<Vec<f32>>, ScoreError> {
        let tasks = images.into_iter().enumerate().map(|(index, image)| {
            let preprocessor = Arc::clone(&self.preprocessor);
            let slots = Arc::clone(&self.preprocess_slots);
            async move {
                // The semaphore is never closed, so acquiring cannot fail.
                let slot = slots.acquire_owned().await.ok();
                tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    let bytes = image.into_bytes().map_err(|source| ScoreError::Base64 { index, source })?;
                    preprocessor.preprocess(&bytes).map_err(|source| ScoreError::Image { index, source })
                })
                .await
            }
        });
        futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .enumerate()
            .map(|(index, joined)| {
                joined.unwrap_or_else(|panic| {
                    // A decoder that panics on hostile input fails that image, not the server.
                    log::error!("image decoder panicked on image {index}: {panic}");
                    Err(ScoreError::Image {
                        index,
                        source: ImageError::Corrupt {
                            format: "image".to_owned(),
                            reason: "the decoder could not read it".to_owned(),
                        },
                    })
                })
            })
            .collect()
    }
}

/// Enough decoded samples for two full batches per session (one running, one ready) plus one
/// being decoded per preprocessing thread; never fewer than one request's worth of images.
fn sample_slots(options: &ClassifierOptions, max_batch_size: usize) -> usize {
    let pipeline = 2 * max_batch_size * options.sessions.max(1) + options.preprocess_threads.max(1);
    pipeline.max(options.max_images_per_request)
}

fn format_shape(shape: &[Option<i64>]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.map_or_else(|| "?".to_owned(), |d| d.to_string())).collect();
    format!("[{}]", dims.join(", "))
}
