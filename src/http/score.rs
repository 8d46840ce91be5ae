//! `POST /score`: images in, predictions out, in request order.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};

use super::error::ApiError;
use super::observe::ScoreSummary;
use super::payload::{extract_images, read_body_by};
use super::types::{ErrorBody, ModelSummary, MultipartUpload, Prediction, ScoreRequest, ScoreResponse};
use crate::batching::FrontEnd;
use crate::state::ServerState;

/// Azure's header for the time spent scoring, in milliseconds.
pub const EXEC_TIME_HEADER: &str = "x-ms-run-fn-exec-ms";

/// Per-request limits, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

/// Classifies one or more images.
#[utoipa::path(post, path = "/score", tag = "scoring",
    request_body(description = "One image as raw bytes, one or more as base64 in JSON, or one or more multipart file parts",
        content(
            (ScoreRequest = "application/json"),
            ("image/jpeg"),
            ("image/png"),
            ("application/octet-stream"),
            (MultipartUpload = "multipart/form-data"))),
    responses(
        (status = 200, body = ScoreResponse, headers(("x-ms-run-fn-exec-ms" = String, description = "Scoring time in ms"))),
        (status = 400, description = "Malformed JSON, base64, multipart or image", body = ErrorBody),
        (status = 408, description = "The body did not arrive before the request timeout", body = ErrorBody),
        (status = 413, description = "Body, image or image count over its limit", body = ErrorBody),
        (status = 415, description = "Unsupported content type", body = ErrorBody),
        (status = 431, description = "A request id header over 100 characters", body = ErrorBody),
        (status = 503, description = "Model loading, queue full, or shutting down; see Retry-After", body = ErrorBody),
        (status = 504, description = "Not answered within the request timeout", body = ErrorBody),
        (status = 500, description = "Inference failed", body = ErrorBody)))]
pub async fn score(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<ServerState>,
    limits: web::Data<RequestLimits>,
) -> Result<HttpResponse, ApiError> {
    let deadline = Instant::now() + limits.request_timeout;
    let classifier = state.classifier().ok_or(ApiError::NotReady)?;

    let body = read_body_by(deadline, request.headers(), payload, limits.max_body_bytes).await?;
    let images = extract_images(request.headers(), body).await?;
    let count = images.len();

    let scoring_started = Instant::now();
    let classification = classifier.classify(FrontEnd::Score, images, deadline).await?;
    let exec_ms = scoring_started.elapsed().as_secs_f64() * 1000.0;

    let mut response =
        HttpResponse::Ok().insert_header((EXEC_TIME_HEADER, format!("{exec_ms:.3}"))).json(ScoreResponse {
            predictions: classification.predictions.into_iter().map(Prediction::from).collect(),
            model: ModelSummary::of(classifier.config()),
        });
    response.extensions_mut().insert(ScoreSummary { images: count, batch_size: classification.batch_size });
    Ok(response)
}

/// CORS preflight and capability checks: 200, as Azure's server answers.
pub async fn options() -> HttpResponse {
    HttpResponse::Ok().finish()
}
