//! Every error the Azure-contract API answers. Each reports a [`Code`] (status and stable name,
//! `crate::error_code`); bodies take the shape of Azure's Python inference server,
//! `{"message": "..."}`, plus the code. Client errors say what was wrong; server faults stay
//! opaque (the cause is logged).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};

use super::types::ErrorBody;
use super::v2::types::V2ErrorBody;
use crate::classifier::ScoreError;
use crate::error_code::Code;
use crate::state::Unready;

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECS: u64 = 1;

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
         image/*, application/dicom or application/octet-stream"
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
    #[error("method not allowed; this path serves {allow}")]
    MethodNotAllowed { allow: String },
    #[error("{0}")]
    InvalidTensor(String),
    #[error("{0}")]
    ModelNotFound(String),
    #[error("{0}")]
    InvalidExplain(String),
    #[error(transparent)]
    Score(#[from] ScoreError),
}

impl ApiError {
    /// The code this error answers with; the domain's errors report their own.
    pub fn code(&self) -> Code {
        match self {
            ApiError::NotReady => Code::NotReady,
            ApiError::ShuttingDown => Code::ShuttingDown,
            ApiError::BodyTooLarge { .. } => Code::BodyTooLarge,
            ApiError::BodyRead(_) => Code::InvalidBody,
            ApiError::BodyTimeout => Code::BodyTimeout,
            ApiError::UnsupportedMediaType(_) => Code::UnsupportedMediaType,
            ApiError::InvalidJson(_) => Code::InvalidJson,
            ApiError::InvalidMultipart(_) => Code::InvalidMultipart,
            ApiError::RequestIdTooLong(_) => Code::RequestIdTooLong,
            ApiError::Unauthorized => Code::Unauthorized,
            ApiError::NotFound => Code::NotFound,
            ApiError::MethodNotAllowed { .. } => Code::MethodNotAllowed,
            ApiError::InvalidTensor(_) => Code::InvalidTensor,
            ApiError::ModelNotFound(_) => Code::ModelNotFound,
            ApiError::InvalidExplain(_) => Code::InvalidExplain,
            ApiError::Score(error) => error.code(),
        }
    }

    pub fn status(&self) -> StatusCode {
        // Every status in the table is a valid one (error_code's tests).
        StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The message sent to the client: the error itself, or for a server fault a pointer to the log.
    pub fn public_message(&self) -> String {
        if self.code().is_opaque() {
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

impl ApiError {
    /// The response, in the body shape of the front end the request came through.
    pub fn response(&self, shape: Shape) -> HttpResponse {
        let status = self.status();
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        match shape {
            Shape::Azure => response.json(ErrorBody { message: self.public_message(), code: self.code() }),
            Shape::V2 => response.json(V2ErrorBody { error: self.public_message(), code: self.code() }),
        }
    }
}

/// Why the server cannot score, as both front ends answer it.
impl From<Unready> for ApiError {
    fn from(unready: Unready) -> Self {
        match unready {
            Unready::Loading => ApiError::NotReady,
            Unready::ShuttingDown => ApiError::ShuttingDown,
        }
    }
}

/// A front end's error body: Azure's `{"message", "code"}` or the Open Inference Protocol's
/// `{"error"}` (plus the same `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Azure,
    V2,
}

impl Shape {
    /// The shape for a request path: the V2 front end lives under `/v2`.
    pub fn of_path(path: &str) -> Self {
        if path == "/v2" || path.starts_with("/v2/") { Shape::V2 } else { Shape::Azure }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.response(Shape::Azure)
    }
}

/// An error of the V2 front end: the same error, answered in V2's body shape.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct V2Error(pub ApiError);

impl<E: Into<ApiError>> From<E> for V2Error {
    fn from(error: E) -> Self {
        V2Error(error.into())
    }
}

impl ResponseError for V2Error {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.response(Shape::V2)
    }
}

/// The error as the front end that owns `path` answers it.
pub fn for_path(path: &str, error: ApiError) -> actix_web::Error {
    match Shape::of_path(path) {
        Shape::Azure => error.into(),
        Shape::V2 => V2Error(error).into(),
    }
}

/// The `ApiError` inside an actix error of either front end.
pub fn api_error(error: &actix_web::Error) -> Option<&ApiError> {
    error.as_error::<ApiError>().or_else(|| error.as_error::<V2Error>().map(|e| &e.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::BatchError;
    use crate::model::engine::EngineError;

    #[test]
    fn server_errors_keep_their_cause_out_of_the_body() {
        let error = ApiError::Score(ScoreError::Inference(BatchError::Engine(EngineError::Run(
            "/secret/path/model.onnx: shape mismatch".to_owned(),
        ))));
        assert_eq!((error.status(), error.code()), (StatusCode::INTERNAL_SERVER_ERROR, Code::InferenceFailed));
        assert!(!error.public_message().contains("/secret"));
        assert!(error.detail().contains("/secret/path/model.onnx"), "{}", error.detail());
    }

    #[test]
    fn unavailable_answers_carry_retry_after() {
        let response = ApiError::Score(ScoreError::Overloaded).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }

    #[test]
    fn a_deadline_passed_in_the_queue_is_a_timeout() {
        let error = ApiError::Score(ScoreError::Inference(BatchError::Expired));
        assert_eq!((error.status(), error.code()), (StatusCode::GATEWAY_TIMEOUT, Code::Timeout));
    }

    #[test]
    fn every_status_in_the_table_is_valid() {
        for code in Code::ALL {
            assert!(StatusCode::from_u16(code.status()).is_ok(), "{code}");
        }
    }
}
