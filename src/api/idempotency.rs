//! `Idempotency-Key` on sends: the same key and body replay the first answer; the same key
//! with a different body, or while the first request is still running, is a 409.

use std::future::Future;

use axum::{
    http::{HeaderMap, StatusCode},
    response::Response,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    AppState,
    error::{ServiceError, json_response},
};
use crate::{
    service::error::Conflict,
    store::idempotency::{self, Claim},
};

pub const HEADER: &str = "idempotency-key";

/// The key from the request, checked: 1 to 255 printable ASCII characters.
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, ServiceError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        })
        .ok_or_else(|| {
            ServiceError::validation(
                "Idempotency-Key",
                "must be 1 to 255 printable ASCII characters",
            )
        })?;
    Ok(Some(key.to_string()))
}

/// Runs `handler` at most once per (project, key, request); its answer (2xx or 4xx) is kept
/// and replayed. A 5xx is not kept, so the client's retry runs again.
pub async fn answer_once<F, Fut>(
    state: &AppState,
    project_id: Uuid,
    key: Option<String>,
    route: &str,
    body: &[u8],
    handler: F,
) -> Result<Response, ServiceError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, serde_json::Value), ServiceError>>,
{
    // Without a key, an error goes back to the caller as it is, to be answered in its
    // route's shape (Resend's, for its batch), as it is with a key.
    let Some(key) = key else {
        let (status, value) = handler().await?;
        return Ok(json_response(status, &value));
    };
    let hash = Sha256::new()
        .chain_update(route.as_bytes())
        .chain_update([0])
        .chain_update(body)
        .finalize();
    match idempotency::claim(&state.pool, project_id, &key, &hash).await? {
        Claim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = json_response(status, &body);
            response.headers_mut().insert(
                "idempotent-replayed",
                axum::http::HeaderValue::from_static("true"),
            );
            return Ok(response);
        }
        Claim::Mismatch => {
            return Err(ServiceError::Conflict {
                kind: Conflict::IdempotencyMismatch,
                detail: "this Idempotency-Key was used with a different request".into(),
            });
        }
        Claim::InProgress => {
            return Err(ServiceError::Conflict {
                kind: Conflict::IdempotencyInProgress,
                detail:
                    "a request with this Idempotency-Key is still being processed; retry shortly"
                        .into(),
            });
        }
        Claim::Fresh => {}
    }
    let (status, value) = match handler().await {
        Ok(answer) => answer,
        // A 5xx or a 429 says "try again": keeping it would replay the refusal forever.
        Err(err)
            if err.status_code().is_server_error()
                || err.status_code() == StatusCode::TOO_MANY_REQUESTS =>
        {
            if let Err(e) = idempotency::abandon(&state.pool, project_id, &key).await {
                tracing::warn!(error = %e, "could not release an idempotency key");
            }
            return Err(err);
        }
        Err(err) => (
            err.status_code(),
            serde_json::to_value(err.to_problem()).map_err(anyhow::Error::from)?,
        ),
    };
    idempotency::finish(&state.pool, project_id, &key, status.as_u16(), &value).await?;
    Ok(json_response(status, &value))
}
