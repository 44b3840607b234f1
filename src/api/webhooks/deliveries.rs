//! Deliveries: queue a test event, list an endpoint's deliveries, replay one.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

use crate::{
    api::{
        AppState,
        auth::ProjectKey,
        error::ProblemResponses,
        error::{ServiceError, ServiceResult},
        extract::AppQuery,
    },
    domain::Scope,
    service::{paging, webhooks},
    store::webhooks::DeliveryRow,
};

/// One attempt of a delivery, as kept in its log.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DeliveryAttempt {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The endpoint's HTTP status; absent when no answer came.
    pub response_status: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
}

/// One event for one endpoint; its id is the `webhook-id` header, the same on every attempt.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookDelivery {
    pub id: Uuid,
    /// `email.delivered`, …, or `webhook.test`.
    pub event_type: String,
    /// `pending`, `sending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's HTTP status, latency and error.
    pub response_status: Option<i32>,
    pub latency_ms: Option<i32>,
    pub error: Option<String>,
    /// The most recent attempts, oldest first.
    #[schema(value_type = Vec<DeliveryAttempt>)]
    pub history: Value,
    /// The body sent, exactly (and signed).
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<DeliveryRow> for WebhookDelivery {
    fn from(r: DeliveryRow) -> Self {
        Self {
            id: r.id,
            event_type: r.event_type,
            status: r.status,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            response_status: r.response_status,
            latency_ms: r.latency_ms,
            error: r.error,
            history: r.log,
            payload: r.payload,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Queue a `webhook.test` event for the endpoint, whatever its event filter.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", operation_id = "send_webhook_test", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 202, description = "Queued; follow it in the deliveries", body = WebhookDelivery), ProblemResponses),
    security(("api_key" = [])))]
pub async fn send_test(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ServiceResult<(StatusCode, Json<WebhookDelivery>)> {
    let key = key.require(Scope::Webhooks)?;
    let endpoint = webhooks::endpoint(&state, key.project_id, &id).await?;
    let row = webhooks::queue_test(&state, &endpoint).await?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub data: Vec<WebhookDelivery>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

// The one list of delivery statuses: the filter checks with it, the spec shows it.
/// Where a delivery stands, as the `status` filter takes it.
#[derive(Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Sending,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sending,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }
}

const LIST_DEFAULT: i64 = 20;
const LIST_MAX: i64 = 100;

/// `(created_at, id)` of the last row of a page, opaque to clients.
fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    let mut bytes = at.timestamp_micros().to_be_bytes().to_vec();
    bytes.extend_from_slice(id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()?;
    if bytes.len() != 24 {
        return None;
    }
    let micros = i64::from_be_bytes(bytes[..8].try_into().ok()?);
    // Deliveries are created after 1970; an earlier time may be out of Postgres' range.
    if micros < 0 {
        return None;
    }
    Some((
        DateTime::from_timestamp_micros(micros)?,
        Uuid::from_slice(&bytes[8..]).ok()?,
    ))
}

/// The endpoint's deliveries, newest first: status, attempts, the last answer and latency,
/// the next attempt, and the attempt log.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", operation_id = "list_webhook_deliveries", tag = "webhooks",
    params(
        ("id" = String, Path, description = "The endpoint's id"),
        ("status" = Option<DeliveryStatus>, Query, description = "Deliveries with this status"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-b][A-Za-z0-9_-]{31}$", description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, description = "One page", body = DeliveryList), ProblemResponses),
    security(("api_key" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> ServiceResult<Json<DeliveryList>> {
    let key = key.require(Scope::Webhooks)?;
    let endpoint = webhooks::endpoint(&state, key.project_id, &id).await?;
    let mut errors = Vec::new();
    let limit = paging::limit(&q, LIST_DEFAULT, LIST_MAX, &mut errors);
    let statuses = DeliveryStatus::ALL.map(DeliveryStatus::as_str);
    let status = paging::one_of(&q, "status", &statuses, &mut errors);
    let before = paging::cursor(&q, decode_cursor, &mut errors);
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    let rows = webhooks::deliveries(&state, &endpoint, status, before, limit + 1).await?;
    let (rows, next_cursor, has_more) =
        paging::split(rows, limit, |r| encode_cursor(r.created_at, r.id));
    Ok(Json(DeliveryList {
        data: rows.into_iter().map(Into::into).collect(),
        next_cursor,
        has_more,
    }))
}

/// Send a delivery again now, with the same `webhook-id` and body.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/retry", operation_id = "retry_webhook_delivery", tag = "webhooks",
    params(
        ("id" = String, Path, description = "The endpoint's id"),
        ("delivery_id" = String, Path, description = "The delivery's id"),
    ),
    responses((status = 202, description = "Queued for an attempt now", body = WebhookDelivery), ProblemResponses),
    security(("api_key" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    key: ProjectKey,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ServiceResult<(StatusCode, Json<WebhookDelivery>)> {
    let key = key.require(Scope::Webhooks)?;
    let endpoint = webhooks::endpoint(&state, key.project_id, &id).await?;
    let delivery_id =
        Uuid::parse_str(&delivery_id).map_err(|_| ServiceError::NotFound("delivery"))?;
    let row = webhooks::replay(&state, &endpoint, delivery_id).await?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
        assert_eq!(decode_cursor("nope"), None);
    }
}
