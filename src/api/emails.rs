//! `/v1/emails`: send, read status and timeline, read the exact MIME.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Serialize;
use uuid::Uuid;

use super::{
    AppState,
    auth::ProjectKey,
    error::{ApiError, ApiResult},
    extract::AppJson,
};
use crate::{
    domain::{Scope, email::SendRequest, status::summarise},
    store::messages::{self, EventRow, MessageRow, RecipientRow},
    submission::{self, Accepted},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/emails", post(send))
        .route("/v1/emails/{id}", get(show))
        .route("/v1/emails/{id}/source", get(source))
}

async fn send(
    State(state): State<AppState>,
    key: ProjectKey,
    AppJson(body): AppJson<SendRequest>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let key = key.require(Scope::Send)?;
    let accepted = submission::submit(&state, key, body).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

#[derive(Serialize)]
pub struct EmailDetail {
    #[serde(flatten)]
    pub message: MessageRow,
    pub recipients: Vec<RecipientRow>,
    pub events: Vec<EventRow>,
}

fn parse_id(raw: &str) -> ApiResult<Uuid> {
    // An id that cannot exist is simply not found, like another project's.
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("email"))
}

async fn show(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ApiResult<Json<EmailDetail>> {
    let key = key.require(Scope::Messages)?;
    let id = parse_id(&id)?;
    let mut message = messages::find(&state.pool, key.project_id, id)
        .await?
        .ok_or(ApiError::NotFound("email"))?;
    let (recipients, events) = tokio::try_join!(
        messages::recipients(&state.pool, id),
        messages::events(&state.pool, id)
    )?;
    // The stored status is refreshed in batches; the recipients are the truth right now.
    message.status = summarise(recipients.iter().map(|r| r.status.as_str())).to_string();
    Ok(Json(EmailDetail {
        message,
        recipients,
        events,
    }))
}

async fn source(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let key = key.require(Scope::Messages)?;
    let id = parse_id(&id)?;
    let mime = messages::source(&state.pool, key.project_id, id)
        .await?
        .ok_or(ApiError::NotFound("email"))?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], mime).into_response())
}
