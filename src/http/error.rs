//! Every error the API answers, with its status and stable code in one table. Bodies take the
//! shape of Azure's Python inference server, `{"message": "..."}`, plus a machine-readable
//! `"code"`. Client errors say what was wrong; server errors stay opaque (the cause is logged).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::batching::BatchError;
use crate::classifier::ScoreError;
use crate::model::preprocess::ImageError;

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    #[schema(example = "image 0: not an image in a supported format (JPEG, PNG, GIF, BMP, TIFF, WebP)")]
    pub message: String,
    /// What went wrong, for programs; stable across versions.
    #[schema(example = "invalid_image")]
    pub code: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the model is still loading; retry when /ready answers 200")]
    NotReady,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("the request body did not arrive before the request timeout")]
    BodyTimeout,
    #[error(
        "unsupported content type `{0}`; send application/json, multipart/form-data, \
         image/* or application/octet-stream"
    )]
    UnsupportedMediaType(String),
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    #[error("invalid multipart body: {0}")]
    InvalidMultipart(String),
    #[error("{0}")]
    RequestIdTooLong(&'static str),
    #[error("missing or wrong API key: send Authorization: Bearer <key>")]
    Unauthorized,
    #[error("no route for this path")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Score(#[from] ScoreError),
}

impl ApiError {
    /// The status table.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ScoreError as S;
        match self {
            ApiError::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            ApiError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::BodyRead(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidMultipart(_) => (StatusCode::BAD_REQUEST, "invalid_multipart"),
            ApiError::RequestIdTooLong(_) => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "request_id_too_long"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Score(S::NoImages) => (StatusCode::BAD_REQUEST, "no_image"),
            ApiError::Score(S::TooManyImages { .. }) => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_images"),
            ApiError::Score(S::Base64 { .. }) => (StatusCode::BAD_REQUEST, "invalid_base64"),
            ApiError::Score(S::Image { source: ImageError::TooLarge { .. }, .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "image_too_large")
            }
            ApiError::Score(S::Image { source: ImageError::UnknownFormat, .. }) => {
                (StatusCode::BAD_REQUEST, "unsupported_image_format")
            }
            ApiError::Score(S::Image { .. }) => (StatusCode::BAD_REQUEST, "invalid_image"),
            ApiError::Score(S::Overloaded) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Score(S::Timeout) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ApiError::Score(S::Inference(BatchError::Expired)) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ApiError::Score(S::Inference(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "inference_failed"),
        }
    }

    /// The message sent to the client: the error itself for 4xx, a pointer to the log for 5xx.
    pub fn public_message(&self) -> String {
        let (status, _) = self.status_and_code();
        if status.is_server_error()
            && status != StatusCode::SERVICE_UNAVAILABLE
            && status != StatusCode::GATEWAY_TIMEOUT
        {
            "inference failed; the server log has the details".to_owned()
        } else {
            self.to_string()
        }
    }

    /// The full cause chain, for the log.
    pub fn detail(&self) -> String {
        let mut detail = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        detail
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(ErrorBody { message: self.public_message(), code })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::engine::EngineError;

    #[test]
    fn server_errors_keep_their_cause_out_of_the_body() {
        let error = ApiError::Score(ScoreError::Inference(BatchError::Engine(EngineError::Run(
            "/secret/path/model.onnx: shape mismatch".to_owned(),
        ))));
        assert_eq!(error.status_and_code(), (StatusCode::INTERNAL_SERVER_ERROR, "inference_failed"));
        assert!(!error.public_message().contains("/secret"));
        assert!(error.detail().contains("/secret/path/model.onnx"), "{}", error.detail());
    }

    #[test]
    fn unavailable_answers_carry_retry_after() {
        let response = ApiError::Score(ScoreError::Overloaded).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }
}
