//! Liveness and readiness probes.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::get,
};
use serde::Serialize;

use super::{AppState, auth::bearer};
use crate::queue;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, `unavailable` or `draining`.
    pub status: String,
    /// Why it is not ready, when it is draining.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `ok`, `unreachable`, or `not checked` while draining.
    pub database: String,
    /// The delivery mode: relays, or sandbox. Only with an operator token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// Recipients waiting or in flight, by status, each counted up to 100000. Only with an
    /// operator token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<BTreeMap<String, i64>>,
    /// The rate-limit backend and whether it can serve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<crate::ratelimit::Status>,
}

/// Ready when Postgres answers (and Redis, when rate limits fail closed without it) and the
/// process is not shutting down; reports the rate-limit backend, and with an operator token
/// also the queue depth and the delivery mode (relay hosts).
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "A dependency is down, or the process is draining", body = Readiness)))]
pub async fn readyz(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> (StatusCode, Json<Readiness>) {
    if state.drain.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "draining".into(),
                reason: Some(format!(
                    "shutting down: requests are still served for up to {} s (http.drain_secs), then the listeners close",
                    state.config.http.drain_secs
                )),
                database: "not checked".into(),
                delivery: None,
                queue: None,
                rate_limits: None,
            }),
        );
    }
    // Anyone who reaches the listener may probe readiness (load balancers do, without
    // credentials), so the anonymous answer costs one trivial query and names no relay host;
    // the queue counts (bounded, but several index scans) and the relay hosts are for operators.
    let operator = bearer(&headers).is_ok_and(|token| state.gate.operator(token).is_ok());
    let (depth, limits) = tokio::join!(
        async {
            if operator {
                queue::mail::depth(&state.pool).await.map(Some)
            } else {
                sqlx::query("SELECT 1")
                    .execute(&state.pool)
                    .await
                    .map(|_| None)
            }
        },
        state.gate.limiter().status()
    );
    match depth {
        Ok(depth) => {
            let (status, word) = if limits.serving {
                (StatusCode::OK, "ready")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            };
            (
                status,
                Json(Readiness {
                    status: word.into(),
                    reason: None,
                    database: "ok".into(),
                    delivery: depth.as_ref().map(|_| state.relays.describe()),
                    queue: depth.map(|depth| depth.by_status.into_iter().collect()),
                    rate_limits: Some(limits),
                }),
            )
        }
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Readiness {
                    status: "unavailable".into(),
                    reason: None,
                    database: "unreachable".into(),
                    delivery: None,
                    queue: None,
                    rate_limits: None,
                }),
            )
        }
    }
}
