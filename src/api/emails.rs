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
    mime,
    store::messages::{self, AcceptedMessage, EventRow, MessageRow, RecipientRow},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/emails", post(send))
        .route("/v1/emails/{id}", get(show))
        .route("/v1/emails/{id}/source", get(source))
}

#[derive(Serialize)]
pub struct RecipientSummary {
    pub email: String,
    pub status: String,
}

#[derive(Serialize)]
pub struct Accepted {
    pub id: Uuid,
    pub status: String,
    pub recipients: Vec<RecipientSummary>,
}

async fn send(
    State(state): State<AppState>,
    key: ProjectKey,
    AppJson(body): AppJson<SendRequest>,
) -> ApiResult<Response> {
    let key = key.require(Scope::Send)?.clone();
    let email = body
        .validate(|name| state.relays.contains(name))
        .map_err(ApiError::Validation)?;
    let id = Uuid::now_v7();
    let message_id = mime::message_id(id, &email);
    let bytes = mime::render(&email, &message_id, state.config.http.max_message_bytes).map_err(
        |e| match e {
            mime::MimeError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
            mime::MimeError::Build(detail) => ApiError::validation("body", detail),
        },
    )?;
    let recipients = email
        .recipients()
        .into_iter()
        .map(|(kind, addr)| (addr.as_str().to_string(), kind.as_str()))
        .collect();
    let metadata = serde_json::to_value(&email.metadata).map_err(anyhow::Error::from)?;
    let accepted = AcceptedMessage {
        id,
        project_id: key.project_id,
        api_key_id: Some(key.id),
        from: email.from.email.as_str(),
        subject: &email.subject,
        message_id: &message_id,
        mime: &bytes,
        tags: &email.tags,
        metadata,
        relay: email.relay.as_deref(),
        // Test keys never relay, whatever the configuration says.
        sandbox: key.test_mode || state.relays.is_sandbox(),
        recipients,
    };
    let rows = messages::insert(&state.pool, &accepted).await?;
    state.waker.wake();
    let status = summarise(rows.iter().map(|r| r.status.as_str())).to_string();
    let body = Accepted {
        id,
        status,
        recipients: rows
            .into_iter()
            .map(|r| RecipientSummary {
                email: r.email,
                status: r.status,
            })
            .collect(),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
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
