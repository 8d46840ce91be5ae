//! `GET /swagger.json`: the OpenAPI 3 document, generated from the same types the handlers
//! serialise, so it cannot drift from the real schemas.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::OpenApi;

use super::types::{
    ErrorBody, Liveness, ModelSummary, MultipartUpload, Prediction, Readiness, ScoreRequest, ScoreResponse,
};
use super::{health, metrics, score, v2};
use crate::error_code::Code;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "scorer",
        description = "ONNX image classification with the Azure Machine Learning inference contract"
    ),
    paths(
        health::root,
        health::liveness,
        health::readiness,
        score::score,
        metrics::metrics,
        swagger,
        v2::server_metadata,
        v2::live,
        v2::ready,
        v2::model_metadata,
        v2::model_ready,
        v2::infer
    ),
    components(schemas(
        ScoreRequest,
        MultipartUpload,
        ScoreResponse,
        ModelSummary,
        Prediction,
        Liveness,
        Readiness,
        ErrorBody,
        Code,
        v2::types::ServerMetadata,
        v2::types::ModelMetadata,
        v2::types::TensorMetadata,
        v2::types::InferRequest,
        v2::types::RequestInput,
        v2::types::RequestOutput,
        v2::types::InferResponse,
        v2::types::ResponseOutput,
        v2::types::V2ErrorBody
    ))
)]
pub struct ApiDoc;

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_json().unwrap_or_default()
});

/// The document as served.
pub fn document() -> String {
    DOCUMENT.clone()
}

/// This document.
#[utoipa::path(get, path = "/swagger.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json", body = Object)))]
pub async fn swagger() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(DOCUMENT.as_str())
}
