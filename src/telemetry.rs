//! Logging: a tracing subscriber filtered by `MAILGATE_LOG` (or the config's `log`), as
//! human-readable lines or, with `log_format = "json"`, one JSON object per line.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(default_filter: &str) {
    init_with_format(default_filter, LogFormat::Human);
}

pub fn init_with_format(default_filter: &str, format: LogFormat) {
    let filter = std::env::var("MAILGATE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        // Event fields at the top level and every enclosing span's fields in `spans`, so a
        // log shipper can index `message_id` and `request_id` without parsing text.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use (several apps in one test
/// process share it).
pub fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("mailgate_smtp_send_seconds".into()),
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ],
            )
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (only in odd embeddings); then our
        // handle still renders what this process recorded through it.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// An info span (unlike tower-http's default debug one), so the default filter keeps
/// `request_id` on every line logged while handling the request. The path only: query
/// strings are not worth logging.
pub fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}
