//! Probes: `/` and `/health` for liveness (200 while the process serves), `/ready` for readiness
//! (200 only once the model is loaded and warmed up, and not while shutting down).

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};

use super::error::ApiError;
use super::types::{ErrorBody, Liveness, ModelSummary, Readiness};
use crate::state::ServerState;

/// Liveness, answered as Azure's Python inference server answers it.
#[utoipa::path(get, path = "/", tag = "probes",
    responses((status = 200, description = "The process is serving", content_type = "text/plain", body = String, example = "Healthy")))]
pub async fn root() -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::plaintext()).body("Healthy")
}

/// Liveness: 200 while the process serves, also while the model loads.
#[utoipa::path(get, path = "/health", tag = "probes", responses((status = 200, body = Liveness)))]
pub async fn liveness() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "alive" })
}

/// Readiness: 200 once the model is loaded and a warm-up inference has run; 503 before that
/// and once shutdown has begun.
#[utoipa::path(get, path = "/ready", tag = "probes", responses(
    (status = 200, body = Readiness),
    (status = 503, description = "Loading the model, or shutting down", body = ErrorBody)))]
pub async fn readiness(state: web::Data<ServerState>) -> Result<HttpResponse, ApiError> {
    let classifier = state.readiness()?;
    Ok(HttpResponse::Ok().json(Readiness { status: "ready", model: ModelSummary::of(classifier.config()) }))
}
