//! One log line and one set of metrics per request, recorded at the boundary. Health probes and
//! metric scrapes log at debug so that they do not drown the scoring lines, and refusals of an
//! overloaded server at most once a second, with their count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use super::error::ApiError;
use super::request_id::RequestIds;
use super::routes;
use crate::error_code::Code;
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
    let error = response.response().error();
    let api_error = error.and_then(super::error::api_error);
    let mut refusals = String::new();
    if api_error.map(ApiError::code) == Some(Code::Overloaded) {
        // Under overload every request beyond the queue is refused, thousands a second: a line
        // for each would cost the workers' time and flood the log store. /metrics counts them all.
        match REFUSALS.record(PROCESS_START.elapsed().as_secs()) {
            Some(count) => refusals = format!(" refused_since_last_line={count}"),
            None => return Ok(response),
        }
    }
    let error = error.map_or_else(String::new, |e| {
        let detail = api_error.map_or_else(|| e.to_string(), ApiError::detail);
        format!(" error=\"{detail}\"")
    });
    let level = if !refusals.is_empty() {
        log::Level::Warn
    } else if status.is_server_error() {
        log::Level::Error
    } else if routes::is_quiet(&route) && status.is_success() {
        log::Level::Debug
    } else {
        log::Level::Info
    };
    log::log!(
        target: "scorer::access",
        level,
        "request_id={request_id} method={method} path={path} status={} latency_ms={:.1}{scoring}{error}{refusals}",
        status.as_u16(),
        elapsed.as_secs_f64() * 1000.0,
    );
    Ok(response)
}

static PROCESS_START: LazyLock<Instant> = LazyLock::new(Instant::now);
static REFUSALS: RefusalLog = RefusalLog::new();

/// Counts refusals and says when one should be logged: the first, then at most one a second.
struct RefusalLog {
    /// The second (since `PROCESS_START`) after which the next line is due.
    next_line_at: AtomicU64,
    /// Refusals since the last line, including the one being recorded.
    unlogged: AtomicU64,
}

impl RefusalLog {
    const fn new() -> Self {
        Self { next_line_at: AtomicU64::new(0), unlogged: AtomicU64::new(0) }
    }

    /// Records one refusal at `now` (whole seconds); returns how many refusals the line logged
    /// now should report, or `None` if it is not yet time for a line.
    fn record(&self, now: u64) -> Option<u64> {
        self.unlogged.fetch_add(1, Ordering::Relaxed);
        let due = self.next_line_at.load(Ordering::Relaxed);
        if now < due || self.next_line_at.compare_exchange(due, now + 1, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return None;
        }
        Some(self.unlogged.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::RefusalLog;

    #[test]
    fn refusals_are_logged_at_once_then_at_most_once_a_second_with_their_count() {
        let log = RefusalLog::new();
        assert_eq!(log.record(5), Some(1), "the first refusal is logged at once");
        assert_eq!(log.record(5), None);
        assert_eq!(log.record(5), None);
        assert_eq!(log.record(6), Some(3), "the next second's line counts the two it skipped");
        assert_eq!(log.record(6), None);
        assert_eq!(log.record(9), Some(2));
        assert_eq!(log.record(10), Some(1));
    }
}
