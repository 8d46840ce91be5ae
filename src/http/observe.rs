//! One log line and one set of metrics per request, recorded at the boundary. Health probes and
//! metric scrapes log at debug so that they do not drown the scoring lines.

use std::sync::Arc;
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use super::error::ApiError;
use super::request_id::RequestIds;
use crate::state::ServerState;

/// Left in the response's extensions by the scoring handler for the access log.
#[derive(Debug, Clone, Copy)]
pub struct ScoreSummary {
    pub images: usize,
    pub batch_size: usize,
}

pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = request.app_data::<web::Data<ServerState>>().map(|state| Arc::clone(&state.metrics));
    let method = request.method().clone();
    let path = request.path().to_owned();

    let response = next.call(request).await?;

    let elapsed = started.elapsed();
    let status = response.status();
    let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    if let Some(metrics) = metrics {
        metrics.http_requests.with_label_values(&[route.as_str(), method.as_str(), status.as_str()]).inc();
        metrics.http_duration.with_label_values(&[route.as_str()]).observe(elapsed.as_secs_f64());
    }

    let request_id = response
        .request()
        .extensions()
        .get::<RequestIds>()
        .map_or_else(|| "-".to_owned(), |ids| ids.request_id.clone());
    let summary = response.response().extensions().get::<ScoreSummary>().copied();
    let scoring = summary.map_or_else(String::new, |s| format!(" images={} batch={}", s.images, s.batch_size));
    let error = response.response().error().map_or_else(String::new, |e| {
        let detail = e.as_error::<ApiError>().map_or_else(|| e.to_string(), ApiError::detail);
        format!(" error=\"{detail}\"")
    });
    let level = if status.is_server_error() {
        log::Level::Error
    } else if matches!(route.as_str(), "/" | "/health" | "/ready" | "/metrics") && status.is_success() {
        log::Level::Debug
    } else {
        log::Level::Info
    };
    log::log!(
        target: "scorer::access",
        level,
        "request_id={request_id} method={method} path={path} status={} latency_ms={:.1}{scoring}{error}",
        status.as_u16(),
        elapsed.as_secs_f64() * 1000.0,
    );
    Ok(response)
}
