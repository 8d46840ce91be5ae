//! The scoring façade: encoded images in, labelled predictions out. Warms up the opened engines,
//! preprocesses on the blocking pool, batches through the inference worker, and postprocesses.
//! Knows nothing about HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::batching::{Admission, BatchConfig, BatchError, Batcher, FrontEnd, Scored};
use crate::error_code::Code;
use crate::explain::{self, Explanation};
use crate::input::{Base64Error, EncodedImage};
use crate::metrics::Metrics;
use crate::model::dicom::WindowChoice;
use crate::model::engine::{EngineError, InferenceEngine};
use crate::model::postprocess::{Postprocessor, Prediction};
use crate::model::preprocess::{DicomSource, ImageError, Preprocessor, Samples};
use crate::model::spec::{BatchDim, InputConfig, ModelConfig, OutputKind};

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
    /// How DICOM files are rendered to grey levels.
    pub dicom_window: WindowChoice,
    /// The largest explanation grid side a request may ask for.
    pub explain_max_grid: u32,
}

impl ClassifierOptions {
    /// The preprocessor the server runs for a model with this input: `scorer model-input` makes
    /// its tensors with the same one.
    pub fn preprocessor(&self, input: &InputConfig) -> Preprocessor {
        Preprocessor::new(input.clone(), self.max_image_pixels)
            .with_dicom(self.dicom_window, self.max_images_per_request)
    }
}

/// What a request asks for beyond the predictions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scoring {
    /// An occlusion map with this grid side for every image.
    pub explain: Option<u32>,
    /// Whether a multi-frame DICOM file yields one prediction per frame (else it is refused).
    pub multi_frame: bool,
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
    #[error("the request holds {count} frames; at most {max} are accepted")]
    TooManyFrames { count: usize, max: usize },
    #[error(
        "an explained request holds at most {max} images: each costs {cost} queue places (explain_grid² + 1) of queue_capacity"
    )]
    TooManyExplained { max: usize, cost: usize },
    #[error("explain_grid must be between 2 and {max}")]
    InvalidGrid { max: u32 },
    #[error("image {index}: a multi-frame DICOM file ({frames} frames) is scored on /score, one prediction per frame")]
    MultiFrame { index: usize, frames: usize },
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
            ScoreError::TooManyImages { .. }
            | ScoreError::TooManyFrames { .. }
            | ScoreError::TooManyExplained { .. } => Code::TooManyImages,
            ScoreError::InvalidGrid { .. } => Code::InvalidExplain,
            ScoreError::MultiFrame { .. } => Code::UnsupportedDicomImage,
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

/// Predictions for the images of one request, in request order (a multi-frame DICOM file's
/// frames in frame order). The vectors run in parallel, one entry per prediction.
#[derive(Debug)]
pub struct Classification {
    pub predictions: Vec<Prediction>,
    /// For a DICOM frame: the file's identifier and the frame's place in it.
    pub frames: Vec<Option<FrameSource>>,
    /// When asked for: the occlusion map.
    pub explanations: Vec<Option<Explanation>>,
    /// The model's output row per image, as it came out of the model.
    pub outputs: Vec<Vec<f32>>,
    /// Every class's probability per image, in label order (predictions list only the top k).
    pub probabilities: Vec<Vec<f32>>,
    /// The largest model batch any of the images ran in.
    pub batch_size: usize,
}

/// Which frame of which DICOM file a prediction is for.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSource {
    pub sop_instance_uid: Option<String>,
    /// 1-based, as DICOM numbers frames.
    pub frame: usize,
    pub frames: usize,
}

/// One encoded image's share of a request: its frames' scores and, when asked, their maps.
struct ImageScores {
    scores: Vec<Scored>,
    dicom: Option<DicomSource>,
    explanations: Vec<Option<Explanation>>,
}

/// The request-wide frame budget that every image's extra frames draw on.
struct FrameBudget {
    used: std::sync::atomic::AtomicUsize,
    max: usize,
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
    queue_capacity: usize,
    explain_max_grid: u32,
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
        let preprocessor = Arc::new(options.preprocessor(&config.input));
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
            queue_capacity: options.queue_capacity,
            explain_max_grid: options.explain_max_grid,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Classifies the images, in order: one prediction per image, no explanation, single-frame
    /// DICOM only. Refuses at once when the queue is full; gives up at `deadline`.
    pub async fn classify(
        &self,
        front_end: FrontEnd,
        images: Vec<EncodedImage>,
        deadline: Instant,
    ) -> Result<Classification, ScoreError> {
        self.classify_with(front_end, images, Scoring::default(), deadline).await
    }

    /// Classifies the images, in order, as `scoring` asks: a multi-frame DICOM file yields one
    /// prediction per frame, and an explained image costs (cells + 1) queue places.
    pub async fn classify_with(
        &self,
        front_end: FrontEnd,
        images: Vec<EncodedImage>,
        scoring: Scoring,
        deadline: Instant,
    ) -> Result<Classification, ScoreError> {
        let cost = self.cost(images.len(), scoring)?;
        let admission = self.admit(front_end, images.len(), cost)?;
        let budget = FrameBudget { used: images.len().into(), max: self.max_images_per_request };
        // Each image goes through on its own: decoded once a sample slot is free, queued for the
        // model, answered. The first failure ends the request and drops its other images.
        let images = images
            .into_iter()
            .enumerate()
            .map(|(index, image)| self.score_one(&admission, &budget, index, image, scoring, cost, deadline));
        let scored = tokio::time::timeout_at(deadline.into(), futures_util::future::try_join_all(images))
            .await
            .map_err(|_| ScoreError::Timeout)??;

        let batch_size = scored.iter().flat_map(|image| &image.scores).map(|s| s.batch_size).max().unwrap_or(0);
        let mut classification = Classification {
            predictions: Vec::new(),
            frames: Vec::new(),
            explanations: Vec::new(),
            outputs: Vec::new(),
            probabilities: Vec::new(),
            batch_size,
        };
        for image in scored {
            let frames = image.scores.len();
            for (frame, (scores, explanation)) in image.scores.into_iter().zip(image.explanations).enumerate() {
                let probabilities = self.postprocessor.probabilities(&scores.scores);
                classification.predictions.push(self.postprocessor.rank(&probabilities));
                classification.probabilities.push(probabilities);
                classification.outputs.push(scores.scores);
                classification.explanations.push(explanation);
                classification.frames.push(image.dicom.as_ref().map(|dicom| FrameSource {
                    sop_instance_uid: dicom.sop_instance_uid.clone(),
                    frame: frame + 1,
                    frames,
                }));
            }
        }
        Ok(classification)
    }

    /// Queue places one image takes: 1, or (cells + 1) when explained.
    fn cost(&self, images: usize, scoring: Scoring) -> Result<usize, ScoreError> {
        let Some(grid) = scoring.explain else { return Ok(1) };
        if !(2..=self.explain_max_grid).contains(&grid) {
            return Err(ScoreError::InvalidGrid { max: self.explain_max_grid });
        }
        let cost = (grid * grid) as usize + 1;
        let max = self.queue_capacity / cost;
        if images > max {
            return Err(ScoreError::TooManyExplained { max, cost });
        }
        Ok(cost)
    }

    /// Runs samples that are already the model's input (`config().input.sample_len()` values
    /// each), batched with every other request; returns the model's output row per sample.
    pub async fn infer(
        &self,
        front_end: FrontEnd,
        samples: Vec<Vec<f32>>,
        deadline: Instant,
    ) -> Result<(Vec<Vec<f32>>, usize), ScoreError> {
        let admission = self.admit(front_end, samples.len(), 1)?;
        let scored = self.batcher.run(&admission, samples, deadline).await?;
        let batch_size = scored.iter().map(|s| s.batch_size).max().unwrap_or(0);
        Ok((scored.into_iter().map(|s| s.scores).collect(), batch_size))
    }

    /// A request's share of the queue: `cost` permits per image, or a refusal at once.
    fn admit(&self, front_end: FrontEnd, count: usize, cost: usize) -> Result<Admission, ScoreError> {
        if count == 0 {
            return Err(ScoreError::NoImages);
        }
        if count > self.max_images_per_request {
            return Err(ScoreError::TooManyImages { count, max: self.max_images_per_request });
        }
        self.batcher.try_admit(count * cost, front_end).ok_or(ScoreError::Overloaded)
    }

    /// One image: a sample slot, decoding on the blocking pool, the model. The slot is held until
    /// the model has answered, so decoded samples never pile up beyond the slots; holding one never
    /// waits for another, so requests of any size cannot deadlock each other. A multi-frame file's
    /// further frames draw on the request's frame budget and are admitted on top.
    #[allow(clippy::too_many_arguments)]
    async fn score_one(
        &self,
        admission: &Admission,
        budget: &FrameBudget,
        index: usize,
        image: EncodedImage,
        scoring: Scoring,
        cost: usize,
        deadline: Instant,
    ) -> Result<ImageScores, ScoreError> {
        // The semaphore is never closed, so acquiring cannot fail.
        let _slot = Arc::clone(&self.sample_slots).acquire_owned().await.ok();
        let Samples { samples, dicom } = self.preprocess(index, image).await?;
        let extra = samples.len() - 1;
        let _extra_admission = if extra > 0 {
            if !scoring.multi_frame {
                return Err(ScoreError::MultiFrame { index, frames: samples.len() });
            }
            let used = budget.used.fetch_add(extra, std::sync::atomic::Ordering::SeqCst) + extra;
            if used > budget.max {
                return Err(ScoreError::TooManyFrames { count: used, max: budget.max });
            }
            Some(self.batcher.try_admit(extra * cost, admission.front_end()).ok_or(ScoreError::Overloaded)?)
        } else {
            None
        };
        let explain_samples = scoring.explain.map(|_| samples.clone());
        let scores = self.batcher.run(admission, samples, deadline).await?;
        let explanations = match (scoring.explain, explain_samples) {
            (Some(grid), Some(samples)) => {
                let mut explanations = Vec::with_capacity(samples.len());
                for (sample, scored) in samples.into_iter().zip(&scores) {
                    explanations.push(Some(self.explain(admission, sample, &scored.scores, grid, deadline).await?));
                }
                explanations
            }
            _ => vec![None; scores.len()],
        };
        Ok(ImageScores { scores, dicom, explanations })
    }

    /// The occlusion map of one sample: its masked copies through the batcher a few at a time
    /// (so they never hold more than `MASKED_AT_ONCE` copies in memory), then the drops.
    async fn explain(
        &self,
        admission: &Admission,
        sample: Vec<f32>,
        scores: &[f32],
        grid: u32,
        deadline: Instant,
    ) -> Result<Explanation, ScoreError> {
        const MASKED_AT_ONCE: usize = 16;
        let probabilities = self.postprocessor.probabilities(scores);
        let class = probabilities.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(k, _)| k);
        let original = probabilities.get(class).copied().unwrap_or_default();
        let cells = (grid * grid) as usize;
        let sample = Arc::new(sample);
        let mut drops = Vec::with_capacity(cells);
        for start in (0..cells).step_by(MASKED_AT_ONCE) {
            let range = start..(start + MASKED_AT_ONCE).min(cells);
            let (input, shared) = (self.config.input.clone(), Arc::clone(&sample));
            let copies = self.blocking(move || explain::masked_copies(&input, &shared, grid, range)).await?;
            for scored in self.batcher.run(admission, copies, deadline).await? {
                let masked = self.postprocessor.probabilities(&scored.scores);
                drops.push(original - masked.get(class).copied().unwrap_or_default());
            }
        }
        let (input, shared, map) = (self.config.input.clone(), Arc::clone(&sample), drops.clone());
        let overlay_png = self.blocking(move || explain::overlay_png(&input, &shared, grid, &map)).await?;
        Ok(Explanation { class, grid, drops, overlay_png })
    }

    /// CPU work on the blocking pool, among the preprocessing threads.
    async fn blocking<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ScoreError> {
        // The semaphore is never closed, so acquiring cannot fail.
        let slot = Arc::clone(&self.preprocess_slots).acquire_owned().await.ok();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|_| ScoreError::Inference(BatchError::Stopped))
    }

    /// Decodes and preprocesses one image on the blocking pool, at most `preprocess_threads` at once.
    async fn preprocess(&self, index: usize, image: EncodedImage) -> Result<Samples, ScoreError> {
        let preprocessor = Arc::clone(&self.preprocessor);
        // The semaphore is never closed, so acquiring cannot fail.
        let slot = Arc::clone(&self.preprocess_slots).acquire_owned().await.ok();
        let decoded = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let bytes = image.into_bytes().map_err(|source| ScoreError::Base64 { index, source })?;
            preprocessor.preprocess_frames(&bytes).map_err(|source| ScoreError::Image { index, source })
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
