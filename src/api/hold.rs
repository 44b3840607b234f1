//! `/v1/emails/{id}/release` and `/discard`: what becomes of mail the content policy held.
//! A key with the `send` scope decides for its project's mail; the operator for any.

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::post,
};
use serde::Deserialize;

use super::{AppState, error::ProblemResponses, error::ServiceResult, extract::AppJson};
use crate::{
    service::{
        Caller,
        emails::{self, EmailDetail},
    },
    store::messages::Settle,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/emails/{id}/release", post(release))
        .route("/v1/emails/{id}/discard", post(discard))
}

/// Release a held message: its recipients are queued and it is sent.
#[utoipa::path(post, path = "/v1/emails/{id}/release", operation_id = "release_email", tag = "emails",
    params(("id" = String, Path, description = "The email's id")),
    responses((status = 200, description = "The email, queued again", body = EmailDetail), ProblemResponses),
    security(("api_key" = []), ("operator" = [])))]
pub async fn release(
    State(state): State<AppState>,
    who: Caller,
    Path(id): Path<String>,
) -> ServiceResult<Json<EmailDetail>> {
    Ok(Json(
        emails::settle(&state, &who, &id, Settle::Release).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscardRequest {
    /// Why, recorded in the `cancelled` events (at most 500 characters, no control
    /// characters).
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub reason: Option<String>,
}

/// Discard a held message: its recipients are cancelled with the reason, nothing is sent.
#[utoipa::path(post, path = "/v1/emails/{id}/discard", operation_id = "discard_email", tag = "emails",
    params(("id" = String, Path, description = "The email's id")),
    request_body = DiscardRequest,
    responses((status = 200, description = "The email, cancelled", body = EmailDetail), ProblemResponses),
    security(("api_key" = []), ("operator" = [])))]
pub async fn discard(
    State(state): State<AppState>,
    who: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<DiscardRequest>,
) -> ServiceResult<Json<EmailDetail>> {
    let reason = emails::discard_reason(body.reason)?;
    Ok(Json(
        emails::settle(&state, &who, &id, Settle::Discard(reason)).await?,
    ))
}
