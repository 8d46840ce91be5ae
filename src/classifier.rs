//! The scoring façade: encoded images in, labelled predictions out. Warms up the opened engines,
//! preprocesses on the blocking pool, batches through the inference worker, and postprocesses.
//! Knows nothing about HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::batching::{Admission, BatchConfig, BatchError, Batcher, FrontEnd, Scored};
use crate::error_code::Code;
use crate::input::{Base64Error, EncodedImage};
use crate::metrics::Metrics;
use crate::model::engine::{EngineError, InferenceEngine};
use crate::model::postprocess::{Postprocessor, Prediction};
use crate::model::preprocess::{ImageError, Preprocessor};
use crate::model::spec::{BatchDim, ModelConfig, OutputKind};

/// How the classifier batches, admits and decodes. The engines come already opened
/// (`model::loader`); `Settings::classifier_options` maps the settings onto these.
#[derive(Debug, Clone, Copy)]
pub struct ClassifierOptions {
    pub max_batch_size: usize,
    pub max_batch_wait: Duration,
    pub queue_capacity: usize,
    pub max_image_pixels: u64,
    pub max_images_per_request: usize,
    /// Images decoded at once; more wait their turn (admission already bounds the queue).
    pub preprocess_threads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("there is no engine to run the model")]
    NoEngine,
    #[error("the warm-up inference failed, so the model cannot serve: {0}")]
    WarmUp(#[source] EngineError),
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

impl ScoreError {
    pub fn code(&self) -> Code {
        match self {
            ScoreError::NoImages => Code::NoImage,
            ScoreError::TooManyImages { .. } => Code::TooManyImages,
            ScoreError::Base64 { .. } => Code::InvalidBase64,
            ScoreError::Image { source, .. } => source.code(),
            ScoreError::Overloaded => Code::Overloaded,
            ScoreError::Timeout => Code::Timeout,
            ScoreError::Inference(source) => source.code(),
        }
    }
}

/// A deadline that passed in the queue is the request's timeout; anything else, an inference failure.
impl From<BatchError> for ScoreError {
    fn from(error: BatchError) -> Self {
        match error {
            BatchError::Expired => ScoreError::Timeout,
            other => ScoreError::Inference(other),
        }
    }
}

/// Predictions for the images of one request, in request order.
#[derive(Debug)]
pub struct Classification {
    pub predictions: Vec<Prediction>,
    /// The model's output row per image, as it came out of the model.
    pub outputs: Vec<Vec<f32>>,
    /// Every class's probability per image, in label order (predictions list only the top k).
    pub probabilities: Vec<Vec<f32>>,
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
    /// Warms up every engine with one inference, settles whether the outputs are probabilities
    /// or logits when the spec does not say, and starts one inference worker per engine.
    pub fn new<E: InferenceEngine>(
        mut config: ModelConfig,
        mut engines: Vec<E>,
        options: &ClassifierOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StartError> {
        if engines.is_empty() {
            return Err(StartError::NoEngine);
        }
        let warm_up_started = Instant::now();
        let sample = vec![0.0; config.input.sample_len()];
        let mut first_row = None;
        for engine in &mut engines {
            let row = engine.infer(&sample, 1).map_err(StartError::WarmUp)?;
            first_row.get_or_insert(row);
        }
        log::info!("warm-up inference took {} ms", warm_up_started.elapsed().as_millis());
        let kind = *config.output.kind.get_or_insert_with(|| {
            let detected = OutputKind::detect(first_row.as_deref().unwrap_or_default());
            log::info!("the spec does not say whether outputs are probabilities or logits; the warm-up output looks like {detected:?}");
            detected
        });

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
        if engines.len() > 1 {
            log::info!("{} ONNX Runtime sessions run side by side", engines.len());
        }
        let sessions = engines.len();
        let preprocessor = Arc::new(Preprocessor::new(config.input.clone(), options.max_image_pixels));
        let postprocessor = Postprocessor::new(config.labels.clone(), kind, config.top_k);
        let batch =
            BatchConfig { max_batch_size, max_wait: options.max_batch_wait, queue_capacity: options.queue_capacity };
        crate::memory::release_free_memory();
        let batcher = Batcher::spawn(engines, batch, metrics)?;
        Ok(Self {
            config,
            preprocessor,
            preprocess_slots: Arc::new(Semaphore::new(options.preprocess_threads.max(1))),
            sample_slots: Arc::new(Semaphore::new(sample_slots(options, sessions, max_batch_size))),
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
    pub async fn classify(
        &self,
        front_end: FrontEnd,
        images: Vec<EncodedImage>,
        deadline: Instant,
    ) -> Result<Classification, ScoreError> {
        let admission = self.admit(front_end, images.len())?;
        // Each image goes through on its own: decoded once a sample slot is free, queued for the
        // model, answered. The first failure ends the request and drops its other images.
        let images =
            images.into_iter().enumerate().map(|(index, image)| self.score_one(&admission, index, image, deadline));
        let scored = tokio::time::timeout_at(deadline.into(), futures_util::future::try_join_all(images))
            .await
            .map_err(|_| ScoreError::Timeout)??;

        let batch_size = scored.iter().map(|s| s.batch_size).max().unwrap_or(0);
        let probabilities: Vec<Vec<f32>> = scored.iter().map(|s| self.postprocessor.probabilities(&s.scores)).collect();
        let predictions = probabilities.iter().map(|row| self.postprocessor.rank(row)).collect();
        let outputs = scored.into_iter().map(|s| s.scores).collect();
        Ok(Classification { predictions, outputs, probabilities, batch_size })
    }

    /// Runs samples that are already the model's input (`config().input.sample_len()` values
    /// each), batched with every other request; returns the model's output row per sample.
    pub async fn infer(
        &self,
        front_end: FrontEnd,
        samples: Vec<Vec<f32>>,
        deadline: Instant,
    ) -> Result<(Vec<Vec<f32>>, usize), ScoreError> {
        let admission = self.admit(front_end, samples.len())?;
        let scored = self.batcher.run(&admission, samples, deadline).await?;
        let batch_size = scored.iter().map(|s| s.batch_size).max().unwrap_or(0);
        Ok((scored.into_iter().map(|s| s.scores).collect(), batch_size))
    }

    /// A request's share of the queue: one permit per image, or a refusal at once.
    fn admit(&self, front_end: FrontEnd, count: usize) -> Result<Admission, ScoreError> {
        if count == 0 {
            return Err(ScoreError::NoImages);
        }
        if count > self.max_images_per_request {
            return Err(ScoreError::TooManyImages { count, max: self.max_images_per_request });
        }
        self.batcher.try_admit(count, front_end).ok_or(ScoreError::Overloaded)
    }

    /// One image: a sample slot, decoding on the blocking pool, the model. The slot is held until
    /// the model has answered, so decoded samples never pile up beyond the slots; holding one never
    /// waits for another, so requests of any size cannot deadlock each other.
    async fn score_one(
        &self,
        admission: &Admission,
        index: usize,
        image: EncodedImage,
        deadline: Instant,
    ) -> Result<Scored, ScoreError> {
        // The semaphore is never closed, so acquiring cannot fail.
        let _slot = Arc::clone(&self.sample_slots).acquire_owned().await.ok();
        let sample = self.preprocess(index, image).await?;
        let mut scored = self.batcher.run(admission, vec![sample], deadline).await?;
        scored.pop().ok_or(ScoreError::Inference(BatchError::Stopped))
    }

    /// Decodes and preprocesses one image on the blocking pool, at most `preprocess_threads` at once.
    async fn preprocess(&self, index: usize, image: EncodedImage) -> Result<Vec<f32>, ScoreError> {
        let preprocessor = Arc::clone(&self.preprocessor);
        // The semaphore is never closed, so acquiring cannot fail.
        let slot = Arc::clone(&self.preprocess_slots).acquire_owned().await.ok();
        let decoded = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let bytes = image.into_bytes().map_err(|source| ScoreError::Base64 { index, source })?;
            preprocessor.preprocess(&bytes).map_err(|source| ScoreError::Image { index, source })
        })
        .await;
        decoded.unwrap_or_else(|panic| {
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
    }
}

/// Enough decoded samples for two full batches per session (one running, one ready) plus one
/// being decoded per preprocessing thread.
fn sample_slots(options: &ClassifierOptions, sessions: usize, max_batch_size: usize) -> usize {
    2 * max_batch_size * sessions + options.preprocess_threads.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MeanColourEngine, config, options, png};

    #[tokio::test]
    async fn classifies_through_a_fake_engine_in_request_order() {
        let config = config("labels = [\"red\", \"green\", \"blue\"]\n[output]\nkind = \"logits\"");
        let engines = vec![MeanColourEngine, MeanColourEngine];
        let classifier = Classifier::new(config, engines, &options(), Arc::new(Metrics::new())).unwrap();
        let images = vec![png([250, 10, 10]), png([10, 10, 250]), png([10, 250, 10])];
        let deadline = Instant::now() + Duration::from_secs(10);
        let classification = classifier.classify(FrontEnd::Score, images, deadline).await.unwrap();
        let labels: Vec<&str> = classification.predictions.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["red", "blue", "green"]);
        // Logits went through a softmax: the three probabilities sum to one.
        let sum: f32 = classification.predictions[0].probabilities.iter().map(|(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{sum}");
    }

    #[tokio::test]
    async fn the_warm_up_settles_an_unstated_output_kind_and_errors_stay_per_request() {
        let classifier =
            Classifier::new(config(""), vec![MeanColourEngine], &options(), Arc::new(Metrics::new())).unwrap();
        // A black warm-up sample scores [0, 0, 0]: not a probability row, so logits.
        assert_eq!(classifier.config().output.kind, Some(OutputKind::Logits));
        let deadline = Instant::now() + Duration::from_secs(10);
        let bad = vec![png([1, 2, 3]), EncodedImage::Raw(bytes::Bytes::from_static(b"not an image"))];
        let error = classifier.classify(FrontEnd::Score, bad, deadline).await.unwrap_err();
        assert!(matches!(error, ScoreError::Image { index: 1, source: ImageError::UnknownFormat }), "{error}");
        assert!(classifier.classify(FrontEnd::Score, vec![png([1, 2, 3])], deadline).await.is_ok());
        let empty = Classifier::new(config(""), Vec::<MeanColourEngine>::new(), &options(), Arc::new(Metrics::new()));
        assert!(matches!(empty, Err(StartError::NoEngine)));
    }
}
