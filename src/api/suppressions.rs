//! `/v1/suppressions`: the project's addresses that are never mailed. Bounces add to it by
//! themselves; people add complaints and manual entries, and remove addresses to mail them again.

use axum::{
    Json, Router,
    extract::{Path, State},
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
    extract::{AppJson, AppQuery},
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

pub const REASONS: [&str; 3] = ["bounce", "complaint", "manual"];
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
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Default `manual`.
    #[serde(default)]
    #[schema(value_type = Option<Reason>)]
    pub reason: Option<String>,
    /// A note kept with the entry.
    #[serde(default)]
    #[schema(max_length = 1000, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub detail: Option<String>,
}

/// Checks an entry (each bad field named) and adds it; the entry and whether it is new. The
/// console's form adds through here too.
pub async fn add_checked(
    state: &AppState,
    project_id: uuid::Uuid,
    email: &str,
    reason: Option<&str>,
    detail: Option<&str>,
) -> ApiResult<(Suppression, bool)> {
    let mut errors = Vec::new();
    let email = EmailAddress::parse(email)
        .map_err(|m| errors.push(FieldError::new("email", m)))
        .ok();
    let reason = reason.unwrap_or("manual");
    if !REASONS.contains(&reason) {
        errors.push(FieldError::new(
            "reason",
            format!("must be one of {}", REASONS.join(", ")),
        ));
    }
    if let Some(d) = detail
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
    Ok(store::add(&state.pool, project_id, email.as_str(), reason, detail).await?)
}

/// Suppress an address: later sends report it `suppressed` and never relay to it.
///
/// An address already on the list keeps its entry (200); a new one answers 201.
#[utoipa::path(post, path = "/v1/suppressions", operation_id = "add_suppression", tag = "suppressions", request_body = AddSuppression,
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
    let (entry, created) = add_checked(
        &state,
        key.project_id,
        &body.email,
        body.reason.as_deref(),
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

/// `(created_at, email)` of the last row of a page: the time as 11 characters of base64url,
/// then the address as it is.
fn encode_cursor(entry: &Suppression) -> String {
    let micros = entry.created_at.timestamp_micros().to_be_bytes();
    let mut cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(micros);
    cursor.push_str(&entry.email);
    cursor
}

fn decode_cursor(raw: &str) -> Option<(DateTime<Utc>, String)> {
    let (time, email) = (raw.get(..11)?, raw.get(11..)?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(time)
        .ok()?;
    let micros = i64::from_be_bytes(bytes.try_into().ok()?);
    // Entries are created after 1970; an earlier time may be out of Postgres' range.
    if micros < 0 || email.contains('\0') {
        return None;
    }
    Some((DateTime::from_timestamp_micros(micros)?, email.to_string()))
}

/// List suppressed addresses, newest first.
#[utoipa::path(get, path = "/v1/suppressions", operation_id = "list_suppressions", tag = "suppressions",
    params(
        ("reason" = Option<Reason>, Query, description = "Entries with this reason"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, pattern = r"^[A-Za-b][A-Za-z0-9_-]{9}[AEIMQUYcgkosw048]", description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, description = "One page", body = SuppressionList), ProblemResponses),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    key: ProjectKey,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> ApiResult<Json<SuppressionList>> {
    let key = key.require(Scope::Suppressions)?;
    Ok(Json(list_page(&state, key.project_id, &q).await?))
}

/// One page of the list for the query's `reason`, `limit` and `cursor` (also the console's).
pub async fn list_page(
    state: &AppState,
    project_id: uuid::Uuid,
    q: &HashMap<String, String>,
) -> ApiResult<SuppressionList> {
    let mut errors = Vec::new();
    let limit = paging::limit(q, LIST_DEFAULT, LIST_MAX, &mut errors);
    let reason = paging::one_of(q, "reason", &REASONS, &mut errors);
    let before = paging::cursor(q, decode_cursor, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let rows = store::list(&state.pool, project_id, reason, before, limit + 1).await?;
    let (data, next_cursor, has_more) = paging::split(rows, limit, encode_cursor);
    Ok(SuppressionList {
        data,
        next_cursor,
        has_more,
    })
}

/// An address that cannot be on the list (not storable) is simply not found.
pub fn lookup_key(raw: &str) -> ApiResult<&str> {
    let email = raw.trim();
    if email.is_empty() || email.len() > 320 || email.contains('\0') {
        return Err(ApiError::NotFound("suppression"));
    }
    Ok(email)
}

/// Whether an address is suppressed, and why.
#[utoipa::path(get, path = "/v1/suppressions/{email}", operation_id = "show_suppression", tag = "suppressions",
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
#[utoipa::path(delete, path = "/v1/suppressions/{email}", operation_id = "remove_suppression", tag = "suppressions",
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
