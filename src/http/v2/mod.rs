//! The Open Inference Protocol (KServe V2 REST) front end: what Triton, KServe, MLServer and
//! OpenVINO Model Server speak, so `tritonclient` and KServe can call the server as they are.
//! It shares the classifier, its admission queue and its batcher with `/score`; errors are the
//! same codes in V2's `{"error"}` shape.

pub mod tensor;
pub mod types;

use std::time::Instant;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::error::{ApiError, V2Error};
use super::observe::ScoreSummary;
use super::payload::read_body_by;
use super::score::RequestLimits;
use crate::batching::FrontEnd;
use crate::classifier::Classifier;
use crate::model::spec::ModelConfig;
use crate::state::ServerState;
use tensor::{Inputs, Parsed};
use types::{InferRequest, InferResponse, ModelMetadata, ServerMetadata, TensorMetadata, V2ErrorBody};

/// Bodies up to this size are parsed on the async worker itself; larger ones (tensors in JSON
/// run to megabytes) on the blocking pool.
const INLINE_BODY_BYTES: usize = 64 * 1024;

/// The path parameters of the model routes.
#[derive(Debug, Deserialize)]
pub struct ModelPath {
    name: String,
    version: Option<String>,
}

/// Server metadata.
#[utoipa::path(get, path = "/v2", tag = "open inference protocol",
    responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(ServerMetadata {
        name: "scorer",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["classification", "binary_tensor_data"],
    })
}

/// Liveness: 200 while the process serves.
#[utoipa::path(get, path = "/v2/health/live", tag = "open inference protocol", responses((status = 200)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// Readiness, as `/ready`: 200 once the model is loaded and warmed up, 503 while loading and
/// once shutdown has begun (KServe answers 503 too; clients check for 200).
#[utoipa::path(get, path = "/v2/health/ready", tag = "open inference protocol", responses(
    (status = 200), (status = 503, body = V2ErrorBody)))]
pub async fn ready(state: web::Data<ServerState>) -> Result<HttpResponse, V2Error> {
    state.readiness()?;
    Ok(HttpResponse::Ok().finish())
}

/// Model metadata: platform, input and output with datatype and shape.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "open inference protocol",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = ModelMetadata), (status = 404, body = V2ErrorBody)))]
pub async fn model_metadata(
    path: web::Path<ModelPath>,
    state: web::Data<ServerState>,
) -> Result<HttpResponse, V2Error> {
    let classifier = state.readiness()?;
    let model = served_model(&path, classifier)?;
    Ok(HttpResponse::Ok().json(ModelMetadata {
        name: model.name.clone(),
        versions: vec![version_of(model)],
        platform: "onnxruntime_onnx",
        inputs: vec![TensorMetadata {
            name: model.input.name.clone(),
            datatype: "FP32",
            shape: tensor::input_shape(model),
        }],
        outputs: vec![TensorMetadata {
            name: model.output.name.clone(),
            datatype: "FP32",
            shape: vec![tensor::input_shape(model)[0], model.output.classes as i64],
        }],
    }))
}

/// Model readiness.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "open inference protocol",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200), (status = 404, body = V2ErrorBody), (status = 503, body = V2ErrorBody)))]
pub async fn model_ready(path: web::Path<ModelPath>, state: web::Data<ServerState>) -> Result<HttpResponse, V2Error> {
    let classifier = state.readiness()?;
    served_model(&path, classifier)?;
    Ok(HttpResponse::Ok().finish())
}

/// Inference: the model's input as an FP32 tensor, or encoded images as a BYTES tensor, in
/// JSON or with the binary data extension; the output as a tensor or as Triton's
/// classification strings.
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "open inference protocol",
    params(("name" = String, Path), ("version" = String, Path)),
    request_body(content = InferRequest, description = "JSON, optionally followed by binary tensor data (Inference-Header-Content-Length)"),
    responses(
        (status = 200, body = InferResponse),
        (status = 400, body = V2ErrorBody), (status = 404, body = V2ErrorBody), (status = 413, body = V2ErrorBody),
        (status = 503, body = V2ErrorBody), (status = 504, body = V2ErrorBody), (status = 500, body = V2ErrorBody)))]
pub async fn infer(
    request: HttpRequest,
    path: web::Path<ModelPath>,
    payload: web::Payload,
    state: web::Data<ServerState>,
    limits: web::Data<RequestLimits>,
) -> Result<HttpResponse, V2Error> {
    let deadline = Instant::now() + limits.request_timeout;
    let classifier = state.classifier().ok_or(ApiError::NotReady)?;
    let model = served_model(&path, classifier)?.clone();

    let body = read_body_by(deadline, request.headers(), payload, limits.max_body_bytes).await?;
    let header_length =
        request.headers().get(tensor::HEADER_LENGTH).map(|v| v.to_str().unwrap_or("not text").to_owned());
    let parsed = if body.len() <= INLINE_BODY_BYTES {
        tensor::parse(body, header_length.as_deref(), &model)?
    } else {
        let model = model.clone();
        web::block(move || tensor::parse(body, header_length.as_deref(), &model))
            .await
            .map_err(|e| ApiError::BodyRead(e.to_string()))??
    };
    let Parsed { request: infer_request, inputs, outputs: plan } = parsed;

    let count;
    let (rows, batch_size) = match inputs {
        Inputs::Samples(samples) => {
            count = samples.len();
            classifier.infer(FrontEnd::V2, samples, deadline).await?
        }
        Inputs::Images(images) => {
            count = images.len();
            let classification = classifier.classify(FrontEnd::V2, images, deadline).await?;
            (classification.outputs, classification.batch_size)
        }
    };

    let (output, binary) = tensor::output(&model, plan, &rows);
    let body = InferResponse {
        model_name: model.name.clone(),
        model_version: Some(version_of(&model)),
        id: infer_request.id,
        outputs: vec![output],
    };
    let mut response = if plan.binary {
        let mut bytes = serde_json::to_vec(&body).map_err(|e| ApiError::BodyRead(e.to_string()))?;
        let json_len = bytes.len();
        bytes.extend_from_slice(&binary);
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
            .insert_header((tensor::HEADER_LENGTH, HeaderValue::from(json_len)))
            .body(bytes)
    } else {
        HttpResponse::Ok().json(body)
    };
    response.extensions_mut().insert(ScoreSummary { images: count, batch_size });
    Ok(response)
}

/// The model a path names, if it is the one this server serves.
fn served_model<'c>(path: &ModelPath, classifier: &'c Classifier) -> Result<&'c ModelConfig, ApiError> {
    let model = classifier.config();
    if path.name != model.name {
        return Err(ApiError::ModelNotFound(format!("no model `{}`; this server serves `{}`", path.name, model.name)));
    }
    match &path.version {
        Some(version) if *version != version_of(model) => Err(ApiError::ModelNotFound(format!(
            "model `{}` has no version `{version}`; it serves version `{}`",
            model.name,
            version_of(model)
        ))),
        _ => Ok(model),
    }
}

/// The model's version as V2 names it: the spec's, or `1` when the spec gives none.
fn version_of(model: &ModelConfig) -> String {
    model.version.clone().unwrap_or_else(|| "1".to_owned())
}
