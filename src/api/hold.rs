//! `/v1/emails/{id}/release` and `/discard`: what becomes of mail the content policy held.
//! A key with the `send` scope decides for its project's mail; the operator for any.

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::post,
};
use serde::Deserialize;

use super::{
    AppState,
    auth::Principal,
    emails::{EmailDetail, detail, parse_id},
    error::{ApiError, ApiResult},
    extract::AppJson,
    openapi::ProblemResponses,
};
use crate::{
    domain::{
        Scope,
        status::{parse_all, summarise},
    },
    store::messages::{self, Cancelled, Settle},
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
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<EmailDetail>> {
    settle(&state, who, &id, Settle::Release).await
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
    who: Principal,
    Path(id): Path<String>,
    AppJson(body): AppJson<DiscardRequest>,
) -> ApiResult<Json<EmailDetail>> {
    let reason = discard_reason(body.reason)?;
    settle(&state, who, &id, Settle::Discard(reason)).await
}

/// A discard's reason, checked; none given reads "no reason given" (the console's too).
pub fn discard_reason(reason: Option<String>) -> ApiResult<String> {
    let reason = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "no reason given".into());
    if reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "reason",
            "at most 500 characters, no control characters",
        ));
    }
    Ok(reason)
}

async fn settle(
    state: &AppState,
    who: Principal,
    id: &str,
    settle: Settle,
) -> ApiResult<Json<EmailDetail>> {
    let project = match &who {
        Principal::Operator => None,
        Principal::Key(key) => {
            if !key.scopes.contains(&Scope::Send) {
                return Err(ApiError::ForbiddenScope(Scope::Send.as_str()));
            }
            Some(key.project_id)
        }
    };
    let id = parse_id(id)?;
    settle_in(state, project, id, settle).await?;
    let project = match project {
        Some(p) => p,
        None => messages::project_of(&state.pool, id)
            .await?
            .ok_or(ApiError::NotFound("email"))?,
    };
    Ok(Json(detail(state, project, id).await?))
}

/// Releases or discards a held message (of `project` only, when given) and wakes what must
/// act on it; the console's buttons settle through here too.
pub async fn settle_in(
    state: &AppState,
    project: Option<uuid::Uuid>,
    id: uuid::Uuid,
    settle: Settle,
) -> ApiResult<()> {
    match messages::settle_held(&state.pool, project, id, &settle).await? {
        Cancelled::NotFound => Err(ApiError::NotFound("email")),
        Cancelled::Nothing(statuses) => Err(ApiError::Conflict {
            code: "not_held",
            detail: format!(
                "nothing is held: the message is {}",
                summarise(&parse_all(statuses.iter().map(String::as_str)))
            ),
        }),
        Cancelled::Some(_) => {
            if matches!(settle, Settle::Release) {
                state.waker.mail.wake();
            }
            state.waker.webhooks.wake();
            Ok(())
        }
    }
}
