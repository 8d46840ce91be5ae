//! Where the answers come from: the model in this process, through the same `Classifier` the
//! server uses (batched, every core), or a running server or deployed endpoint over HTTP.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use ort::environment::Environment;
use serde::{Deserialize, Serialize};

use crate::batching::FrontEnd;
use crate::classifier::{Classifier, ScoreError};
use crate::input::EncodedImage;
use crate::metrics::Metrics;
use crate::model::{discovery, loader};
use crate::settings::{Secret, Settings};

/// An image's answer: every class the answer lists with its probability, highest first.
pub type Scores = Vec<(String, f32)>;

/// How long one image may take before it counts as failed.
const IMAGE_DEADLINE: Duration = Duration::from_secs(300);

/// Which model answered, as the report names it.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    /// `in-process` or `http`.
    pub kind: &'static str,
    /// The model folder, or the URL.
    pub location: String,
    pub name: Option<String>,
    pub version: Option<String>,
}

/// How `--url` sends each image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SendAs {
    /// The image file's bytes as `application/octet-stream`.
    Raw,
    /// `{"image": "<base64>"}`, as `az ml online-endpoint invoke` sends.
    Json,
}

pub enum Source {
    Local { classifier: Box<Classifier>, info: SourceInfo },
    Remote { endpoint: Arc<Endpoint>, info: SourceInfo },
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Discovery(#[from] discovery::DiscoveryError),
    #[error("could not load the model: {0}")]
    Open(#[from] loader::OpenError),
    #[error("could not start the model: {0}")]
    Start(#[from] crate::classifier::StartError),
    #[error("--url must start with http:// or https://, got {0}")]
    BadUrl(String),
}

impl Source {
    /// The model in `model_dir`, opened and warmed up with the server's settings.
    pub fn local(environment: &Environment, model_dir: &Path, settings: &Settings) -> Result<Self, SourceError> {
        let files = discovery::discover(model_dir)?;
        let model = loader::load(environment, &files, &settings.engine_options())?;
        let info = SourceInfo {
            kind: "in-process",
            location: model_dir.canonicalize().unwrap_or_else(|_| model_dir.to_path_buf()).display().to_string(),
            name: Some(model.config.name.clone()),
            version: model.config.version.clone(),
        };
        let options = settings.classifier_options();
        let classifier = Classifier::new(model.config, model.engines, &options, Arc::new(Metrics::new()))?;
        Ok(Self::Local { classifier: Box::new(classifier), info })
    }

    /// A scoring URL; `deployment` routes each request to one deployment of an Azure ML endpoint.
    pub fn remote(
        url: &str,
        key: Option<Secret>,
        send_as: SendAs,
        deployment: Option<&str>,
    ) -> Result<Self, SourceError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SourceError::BadUrl(url.to_owned()));
        }
        let location = match deployment {
            Some(deployment) => format!("{url} (deployment {deployment})"),
            None => url.to_owned(),
        };
        let info = SourceInfo { kind: "http", location, name: None, version: None };
        let endpoint = Endpoint::new(url, key, send_as, deployment.map(str::to_owned));
        Ok(Self::Remote { endpoint: Arc::new(endpoint), info })
    }

    /// The model's labels in output order, when known before scoring (in-process models).
    pub fn labels(&self) -> Option<&[String]> {
        match self {
            Source::Local { classifier, .. } => Some(&classifier.config().labels),
            Source::Remote { .. } => None,
        }
    }

    pub fn info(&self) -> &SourceInfo {
        match self {
            Source::Local { info, .. } | Source::Remote { info, .. } => info,
        }
    }

    /// Notes the model name a server reported, for the report.
    pub fn learn_model(&mut self, model: Option<&ModelSummary>) {
        if let (Source::Remote { info, .. }, Some(model)) = (self, model)
            && info.name.is_none()
        {
            info.name = Some(model.name.clone());
            info.version = model.version.clone();
        }
    }

    /// Scores one image file. The error is a message for people.
    pub async fn score(&self, image: Bytes) -> Result<(Scores, Option<ModelSummary>), String> {
        match self {
            Source::Local { classifier, .. } => {
                let deadline = Instant::now() + IMAGE_DEADLINE;
                let classification = classifier
                    .classify(FrontEnd::Score, vec![EncodedImage::Raw(image)], deadline)
                    .await
                    .map_err(|error| match error {
                        ScoreError::Image { source, .. } => source.to_string(),
                        ScoreError::Base64 { source, .. } => source.to_string(),
                        other => other.to_string(),
                    })?;
                let labels = &classifier.config().labels;
                let probabilities = classification.probabilities.into_iter().next().unwrap_or_default();
                let mut scores: Scores = labels.iter().cloned().zip(probabilities).collect();
                scores.sort_by(|a, b| b.1.total_cmp(&a.1));
                Ok((scores, None))
            }
            Source::Remote { endpoint, .. } => {
                let endpoint = Arc::clone(endpoint);
                tokio::task::spawn_blocking(move || endpoint.score(&image))
                    .await
                    .unwrap_or_else(|_| Err("the HTTP client panicked".to_owned()))
            }
        }
    }
}

/// A scoring URL and how to call it. Blocking; called from the blocking pool.
pub struct Endpoint {
    agent: ureq::Agent,
    url: String,
    key: Option<Secret>,
    send_as: SendAs,
    deployment: Option<String>,
}

/// The parts of the server's answer the evaluation reads (`/score`'s response).
#[derive(Debug, Deserialize)]
struct ScoreResponse {
    predictions: Vec<PredictionBody>,
    model: Option<ModelSummary>,
}

#[derive(Debug, Deserialize)]
struct PredictionBody {
    probabilities: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelSummary {
    pub name: String,
    pub version: Option<String>,
}

impl Endpoint {
    fn new(url: &str, key: Option<Secret>, send_as: SendAs, deployment: Option<String>) -> Self {
        // The platform's trust store, not a bundled one: what a corporate proxy's CA is added to.
        let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(IMAGE_DEADLINE))
            .http_status_as_error(false)
            .tls_config(tls)
            .build()
            .into();
        Self { agent, url: url.to_owned(), key, send_as, deployment }
    }

    fn score(&self, image: &[u8]) -> Result<(Scores, Option<ModelSummary>), String> {
        let (content_type, body) = match self.send_as {
            SendAs::Raw => ("application/octet-stream", image.to_vec()),
            SendAs::Json => {
                let text = base64::engine::general_purpose::STANDARD.encode(image);
                ("application/json", serde_json::json!({ "image": text }).to_string().into_bytes())
            }
        };
        let mut request = self.agent.post(&self.url).header("Content-Type", content_type);
        if let Some(key) = &self.key {
            request = request.header("Authorization", format!("Bearer {}", key.expose()));
        }
        if let Some(deployment) = &self.deployment {
            // Azure ML's header for sending a request to one deployment, whatever the traffic split.
            request = request.header("azureml-model-deployment", deployment);
        }
        let mut response = request.send(&body[..]).map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        // Azure ML answers 424 for any error of the container and names the container's status here.
        let model_status = response
            .headers()
            .get("ms-azureml-model-error-statuscode")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.body_mut().read_to_string().map_err(|e| format!("reading the answer failed: {e}"))?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|body| body.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(200).collect());
            let from_model = model_status.map(|s| format!(" (the model server answered {s})")).unwrap_or_default();
            return Err(format!("HTTP {}{from_model}: {message}", status.as_u16()));
        }
        let parsed: ScoreResponse =
            serde_json::from_str(&text).map_err(|e| format!("the answer is not a /score response: {e}"))?;
        let prediction =
            parsed.predictions.into_iter().next().ok_or_else(|| "the answer holds no prediction".to_owned())?;
        let mut scores: Scores = prediction
            .probabilities
            .into_iter()
            .filter_map(|(label, p)| p.as_f64().map(|p| (label, p as f32)))
            .collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok((scores, parsed.model))
    }
}
