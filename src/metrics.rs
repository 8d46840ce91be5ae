//! Prometheus metrics, one registry per server so that tests and embedders do not share counters.
//! HTTP metrics are labelled by route pattern, never by raw path, to keep cardinality fixed.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub queue_wait: Histogram,
    pub inference_duration: Histogram,
    pub batch_size: Histogram,
    pub batches: IntCounterVec,
    pub queue_depth: IntGauge,
    pub images_in_flight: IntGauge,
    pub model_loaded: IntGauge,
}

const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

impl Metrics {
    // Metric definitions are constants: a failure here is a bug, found by every test run.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("scorer".to_owned()), None).expect("a valid prefix. This is a bug.");
        let metrics = Self {
            http_requests: IntCounterVec::new(
                Opts::new("http_requests_total", "HTTP requests answered, by route pattern, method and status"),
                &["route", "method", "status"],
            )
            .expect("valid metric. This is a bug."),
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "Time from request arrival to response, by route pattern",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )
            .expect("valid metric. This is a bug."),
            queue_wait: Histogram::with_opts(
                HistogramOpts::new("queue_wait_seconds", "Time an image waited in the batch queue")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid metric. This is a bug."),
            inference_duration: Histogram::with_opts(
                HistogramOpts::new("inference_duration_seconds", "Time of one model run (one batch)")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid metric. This is a bug."),
            batch_size: Histogram::with_opts(
                HistogramOpts::new("batch_size", "Images per model run")
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            )
            .expect("valid metric. This is a bug."),
            batches: IntCounterVec::new(
                Opts::new(
                    "batches_total",
                    "Model runs, by the front ends whose samples they held: score, v2, or mixed",
                ),
                &["front_ends"],
            )
            .expect("valid metric. This is a bug."),
            queue_depth: IntGauge::new("queue_depth", "Images waiting in the batch queue")
                .expect("valid metric. This is a bug."),
            images_in_flight: IntGauge::new("images_in_flight", "Images admitted and not yet answered")
                .expect("valid metric. This is a bug."),
            model_loaded: IntGauge::new("model_loaded", "1 once the model is loaded and warmed up")
                .expect("valid metric. This is a bug."),
            registry,
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 9] = [
            Box::new(metrics.http_requests.clone()),
            Box::new(metrics.http_duration.clone()),
            Box::new(metrics.queue_wait.clone()),
            Box::new(metrics.inference_duration.clone()),
            Box::new(metrics.batch_size.clone()),
            Box::new(metrics.batches.clone()),
            Box::new(metrics.queue_depth.clone()),
            Box::new(metrics.images_in_flight.clone()),
            Box::new(metrics.model_loaded.clone()),
        ];
        for collector in collectors {
            metrics.registry.register(collector).expect("metric names are unique. This is a bug.");
        }
        metrics
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec only fails on invalid metric data, which the types above rule out.
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            log::error!("could not encode metrics: {error}");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
