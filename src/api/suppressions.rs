//! `/v1/suppressions`: the project's addresses that are never mailed. Bounces add to it by
//! themselves; people add complaints and manual entries, and remove addresses to mail them again.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::get,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use super::{
    AppState,
    auth::ProjectKey,
    error::{ApiError, ApiResult, FieldError},
    extract::AppJson,
    openapi::ProblemResponses,
    paging,
};
use crate::{
    domain::{EmailAddress, Scope},
    store::suppressions::{self as store, Suppression},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/suppressions", get(list).post(add))
        .route("/v1/suppressions/{email}", get(show).delete(remove))
}

const REASONS: [&str; 3] = ["bounce", "complaint", "manual"];
const DETAIL_MAX: usize = 1000;

/// Why an address is suppressed.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum Reason {
    Bounce,
    Complaint,
    Manual,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSuppression {
    #[schema(format = Email)]
    pub email: String,
    /// Default `manual`.
    #[serde(default)]
    #[schema(value_type = Option<Reason>)]
    pub reason: Option<String>,
    /// A note kept with the entry.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub detail: Option<String>,
}

/// Suppress an address: later sends report it `suppressed` and never relay to it.
///
/// An address already on the list keeps its entry (200); a new one answers 201.
#[utoipa::path(post, path = "/v1/suppressions", tag = "suppressions", request_body = AddSuppression,
    responses(
        (status = 201, description = "Added", body = Suppression),
        (status = 200, description = "Already on the list: the existing entry", body = Suppression),
        ProblemResponses),
    security(("api_key" = [])))]
pub async fn add(
    State(state): State<AppState>,
    key: ProjectKey,
    AppJson(body): AppJson<AddSuppression>,
) -> ApiResult<(StatusCode, Json<Suppression>)> {
    let key = key.require(Scope::Suppressions)?;
    let mut errors = Vec::new();
    let email = EmailAddress::parse(&body.email)
        .map_err(|m| errors.push(FieldError::new("email", m)))
        .ok();
    let reason = body.reason.as_deref().unwrap_or("manual");
    if !REASONS.contains(&reason) {
        errors.push(FieldError::new(
            "reason",
            format!("must be one of {}", REASONS.join(", ")),
        ));
    }
    if let Some(d) = &body.detail
        && (d.chars().count() > DETAIL_MAX || d.chars().any(char::is_control))
    {
        errors.push(FieldError::new(
            "detail",
            format!("at most {DETAIL_MAX} characters, no control characters"),
        ));
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let (entry, created) = store::add(
        &state.pool,
        key.project_id,
        email.as_str(),
        reason,
        body.detail.as_deref(),
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(entry)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SuppressionList {
    pub data: Vec<Suppression>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

const LIST_DEFAULT: i64 = 50;
const LIST_MAX: i64 = 500;

fn encode_cursor(entry: &Suppression) -> String {
    let mut bytes = entry.created_at.timestamp_micros().to_be_bytes().to_vec();
    bytes.extend_from_slice(entry.email.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(raw: &str) -> Option<(DateTime<Utc>, String)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()?;
    if bytes.len() < 8 {
        return None;
    }
    let micros = i64::from_be_bytes(bytes[..8].try_into().ok()?);
    let email = String::from_utf8(bytes[8..].to_vec()).ok()?;
    if email.contains('\0') {
        return None;
    }
    Some((DateTime::from_timestamp_micros(micros)?, email))
}

/// List suppressed addresses, newest first.
#[utoipa::path(get, path = "/v1/suppressions", tag = "suppressions",
    params(
        ("reason" = Option<String>, Query, description = "bounce, complaint or manual"),
        ("limit" = Option<i64>, Query, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, description = "One page", body = SuppressionList), ProblemResponses),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    key: ProjectKey,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<SuppressionList>> {
    let key = key.require(Scope::Suppressions)?;
    let mut errors = Vec::new();
    let limit = paging::limit(&q, LIST_DEFAULT, LIST_MAX, &mut errors);
    let reason = paging::one_of(&q, "reason", &REASONS, &mut errors);
    let before = paging::cursor(&q, decode_cursor, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let rows = store::list(&state.pool, key.project_id, reason, before, limit + 1).await?;
    let (data, next_cursor, has_more) = paging::split(rows, limit, encode_cursor);
    Ok(Json(SuppressionList {
        data,
        next_cursor,
        has_more,
    }))
}

/// An address that cannot be on the list (not storable) is simply not found.
fn lookup_key(raw: &str) -> ApiResult<&str> {
    let email = raw.trim();
    if email.is_empty() || email.len() > 320 || email.contains('\0') {
        return Err(ApiError::NotFound("suppression"));
    }
    Ok(email)
}

/// Whether an address is suppressed, and why.
#[utoipa::path(get, path = "/v1/suppressions/{email}", tag = "suppressions",
    params(("email" = String, Path, description = "The address (any case)")),
    responses((status = 200, description = "The entry", body = Suppression), ProblemResponses),
    security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(email): Path<String>,
) -> ApiResult<Json<Suppression>> {
    let key = key.require(Scope::Suppressions)?;
    store::find(&state.pool, key.project_id, lookup_key(&email)?)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("suppression"))
}

/// Remove an address from the list: later sends go to it again.
#[utoipa::path(delete, path = "/v1/suppressions/{email}", tag = "suppressions",
    params(("email" = String, Path, description = "The address (any case)")),
    responses((status = 204, description = "Removed"), ProblemResponses),
    security(("api_key" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(email): Path<String>,
) -> ApiResult<StatusCode> {
    let key = key.require(Scope::Suppressions)?;
    if store::remove(&state.pool, key.project_id, lookup_key(&email)?).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("suppression"))
    }
}
