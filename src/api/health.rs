//! Liveness and readiness probes.

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde_json::{Value, json};

use super::AppState;
use crate::queue;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when Postgres answers (and Redis, when rate limits fail closed without it);
/// reports the queue depth, the delivery mode and the rate-limit backend.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (depth, limits) = tokio::join!(queue::depth(&state.pool), state.limiter.status());
    match depth {
        Ok(depth) => {
            let depth: serde_json::Map<String, Value> =
                depth.into_iter().map(|(s, n)| (s, json!(n))).collect();
            let (status, word) = if limits.serving {
                (StatusCode::OK, "ready")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            };
            (
                status,
                Json(json!({
                    "status": word,
                    "database": "ok",
                    "delivery": state.relays.describe(),
                    "queue": depth,
                    "rate_limits": limits,
                })),
            )
        }
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unreachable" })),
            )
        }
    }
}
