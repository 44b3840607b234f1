//! `GET /metrics`: Prometheus text. Queue gauges are read from Postgres at scrape time, so
//! every instance reports the shared queue, not only its own share.

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};

use super::AppState;
use crate::{domain::RecipientStatus, queue};

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match queue::mail::stats(&state.pool).await {
        Ok(stats) => {
            for status in RecipientStatus::IN_FLIGHT.map(RecipientStatus::as_str) {
                let n = stats
                    .by_status
                    .iter()
                    .find(|(s, _)| s == status)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("mailgate_queue_depth", "status" => status).set(n as f64);
            }
            metrics::gauge!("mailgate_queue_oldest_waiting_seconds")
                .set(stats.oldest_waiting_secs.unwrap_or(0.0));
            metrics::gauge!("mailgate_database_up").set(1.0);
        }
        Err(err) => {
            tracing::warn!(error = %err, "metrics: queue stats unavailable");
            metrics::gauge!("mailgate_database_up").set(0.0);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
}
