//! `GET /metrics`: Prometheus text, served by its own listener (`metrics.addr`, loopback by
//! default), never by the API's. The API listener faces clients, and with open and click
//! tracking on it faces the internet; the metrics name every project with its volumes, so
//! they are for the operator's scraper only. On the API listener `/metrics` is an unknown
//! route (404).
//!
//! Queue gauges are read from Postgres at scrape time, so every instance reports the shared
//! queue, not only its own share; the read is bounded (`queue::mail::depth`), so a scrape
//! costs the same however much history `recipients` keeps.

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use sqlx::PgPool;

use crate::queue;

/// The metrics listener's whole router: `/metrics`, and nothing else.
pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(pool)
}

async fn metrics(State(pool): State<PgPool>) -> impl IntoResponse {
    match queue::mail::depth(&pool).await {
        Ok(depth) => {
            for status in queue::mail::WAITING.map(|s| s.as_str()) {
                let n = depth
                    .by_status
                    .iter()
                    .find(|(s, _)| s == status)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("mailgate_queue_depth", "status" => status).set(n as f64);
            }
            metrics::gauge!("mailgate_queue_oldest_waiting_seconds")
                .set(depth.oldest_waiting_secs.unwrap_or(0.0));
            metrics::gauge!("mailgate_database_up").set(1.0);
        }
        Err(err) => {
            tracing::warn!(error = %err, "metrics: queue depth unavailable");
            metrics::gauge!("mailgate_database_up").set(0.0);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
}
