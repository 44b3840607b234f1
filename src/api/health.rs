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

/// Ready when Postgres answers; reports the queue depth and the delivery mode.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match queue::depth(&state.pool).await {
        Ok(depth) => {
            let depth: serde_json::Map<String, Value> =
                depth.into_iter().map(|(s, n)| (s, json!(n))).collect();
            (
                StatusCode::OK,
                Json(json!({
                    "status": "ready",
                    "database": "ok",
                    "delivery": state.relays.describe(),
                    "queue": depth,
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
