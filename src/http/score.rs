//! `POST /score`: images in, predictions out, in request order.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};

use super::error::ApiError;
use super::observe::ScoreSummary;
use super::payload::{extract_input, read_body_by};
use super::types::{ErrorBody, ModelSummary, MultipartUpload, Prediction, ScoreRequest, ScoreResponse};
use crate::batching::FrontEnd;
use crate::classifier::Scoring;
use crate::explain::DEFAULT_GRID;
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
    params(
        ("explain" = Option<bool>, Query, description = "Add an occlusion-sensitivity map to every prediction (slow: grid² + 1 inferences an image)"),
        ("explain_grid" = Option<u32>, Query, description = "The map's grid side, 2 to `explain_max_grid` (default 8)")),
    request_body(description = "One image (JPEG, PNG, ..., or a DICOM file) as raw bytes, one or more as base64 in JSON, or one or more multipart file parts; a multi-frame DICOM file yields one prediction per frame",
        content(
            (ScoreRequest = "application/json"),
            ("image/jpeg"),
            ("image/png"),
            ("application/dicom"),
            ("application/octet-stream"),
            (MultipartUpload = "multipart/form-data"))),
    responses(
        (status = 200, body = ScoreResponse, headers(("x-ms-run-fn-exec-ms" = String, description = "Scoring time in ms"))),
        (status = 400, description = "Malformed JSON, base64, multipart, image or DICOM file, or explain options", body = ErrorBody),
        (status = 408, description = "The body did not arrive before the request timeout", body = ErrorBody),
        (status = 413, description = "Body, image or image count over its limit", body = ErrorBody),
        (status = 415, description = "Unsupported content type, DICOM transfer syntax or DICOM image kind", body = ErrorBody),
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
    let input = extract_input(request.headers(), body).await?;
    let scoring = scoring(request.query_string(), input.explain, input.explain_grid)?;
    let count = input.images.len();

    let scoring_started = Instant::now();
    let classification = classifier.classify_with(FrontEnd::Score, input.images, scoring, deadline).await?;
    let exec_ms = scoring_started.elapsed().as_secs_f64() * 1000.0;
    let batch_size = classification.batch_size;

    let mut response =
        HttpResponse::Ok().insert_header((EXEC_TIME_HEADER, format!("{exec_ms:.3}"))).json(ScoreResponse {
            predictions: Prediction::all(classification),
            model: ModelSummary::of(classifier.config()),
        });
    response.extensions_mut().insert(ScoreSummary { images: count, batch_size });
    Ok(response)
}

/// What the query string and a JSON body ask for: the query wins where both say.
fn scoring(query: &str, explain: Option<bool>, explain_grid: Option<u32>) -> Result<Scoring, ApiError> {
    let invalid = |what: &str| ApiError::InvalidExplain(what.to_owned());
    let (mut query_explain, mut query_grid) = (None, None);
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        match key {
            "explain" => {
                query_explain = Some(match value {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => return Err(invalid("explain must be true or false")),
                })
            }
            "explain_grid" => {
                query_grid = Some(value.parse::<u32>().map_err(|_| invalid("explain_grid must be a whole number"))?)
            }
            _ => {}
        }
    }
    let explain = query_explain.or(explain).unwrap_or(false);
    let grid = query_grid.or(explain_grid).unwrap_or(DEFAULT_GRID);
    Ok(Scoring { explain: explain.then_some(grid), multi_frame: true })
}

/// CORS preflight and capability checks: 200, as Azure's server answers.
pub async fn options() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_comes_from_the_query_or_the_body() {
        assert_eq!(scoring("", None, None).unwrap().explain, None);
        assert_eq!(scoring("explain=true", None, None).unwrap().explain, Some(DEFAULT_GRID));
        assert_eq!(scoring("explain", None, None).unwrap().explain, Some(DEFAULT_GRID));
        assert_eq!(scoring("explain=1&explain_grid=4", None, None).unwrap().explain, Some(4));
        assert_eq!(scoring("", Some(true), Some(5)).unwrap().explain, Some(5));
        assert_eq!(scoring("explain=false", Some(true), None).unwrap().explain, None);
        assert!(scoring("explain=yes", None, None).is_err());
        assert!(scoring("explain=true&explain_grid=x", None, None).is_err());
    }
}
