//! Turning a send request into committed rows: validate, render the MIME once, commit.
//! Shared by every way mail comes in (single and batch HTTP sends, later SMTP submission).

use serde::Serialize;
use uuid::Uuid;

use crate::{
    api::{AppState, error::ApiError},
    domain::{NewEmail, email::SendRequest, status::summarise},
    mime,
    store::{
        api_keys::AuthenticatedKey,
        messages::{self, AcceptedMessage},
    },
    templates,
};

#[derive(Debug, Clone, Serialize)]
pub struct RecipientSummary {
    pub email: String,
    pub status: String,
}

/// The answer to an accepted send.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub id: Uuid,
    pub status: String,
    pub recipients: Vec<RecipientSummary>,
}

/// A message that passed every check and has its bytes, not yet committed.
pub struct Prepared {
    pub id: Uuid,
    pub email: NewEmail,
    pub message_id: String,
    pub mime: Vec<u8>,
}

/// Checks the request and renders its MIME. Every problem is a 4xx naming the field.
pub async fn prepare(
    state: &AppState,
    key: &AuthenticatedKey,
    mut request: SendRequest,
) -> Result<Prepared, ApiError> {
    templates::send::expand(state, key.project_id, &mut request).await?;
    let email = request
        .validate(|name| state.relays.contains(name))
        .map_err(ApiError::Validation)?;
    let id = Uuid::now_v7();
    let message_id = mime::message_id(id, &email);
    let mime = mime::render(&email, &message_id, state.config.http.max_message_bytes).map_err(
        |e| match e {
            mime::MimeError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
            mime::MimeError::Build(detail) => ApiError::validation("body", detail),
        },
    )?;
    Ok(Prepared {
        id,
        email,
        message_id,
        mime,
    })
}

/// Commits one prepared message and wakes the workers. Only then may the caller say 2xx.
pub async fn commit(
    state: &AppState,
    key: &AuthenticatedKey,
    prepared: &Prepared,
) -> Result<Accepted, ApiError> {
    let email = &prepared.email;
    let recipients = email
        .recipients()
        .into_iter()
        .map(|(kind, addr)| (addr.as_str().to_string(), kind.as_str()))
        .collect();
    let accepted = AcceptedMessage {
        id: prepared.id,
        project_id: key.project_id,
        api_key_id: Some(key.id),
        from: email.from.email.as_str(),
        subject: &email.subject,
        message_id: &prepared.message_id,
        mime: &prepared.mime,
        tags: &email.tags,
        metadata: serde_json::to_value(&email.metadata).map_err(anyhow::Error::from)?,
        relay: email.relay.as_deref(),
        // Test keys never relay, whatever the configuration says.
        sandbox: key.test_mode || state.relays.is_sandbox(),
        recipients,
    };
    let rows = messages::insert(&state.pool, &accepted).await?;
    state.waker.wake();
    Ok(Accepted {
        id: prepared.id,
        status: summarise(rows.iter().map(|r| r.status.as_str())).to_string(),
        recipients: rows
            .into_iter()
            .map(|r| RecipientSummary {
                email: r.email,
                status: r.status,
            })
            .collect(),
    })
}

/// Validate, render and commit one message.
pub async fn submit(
    state: &AppState,
    key: &AuthenticatedKey,
    request: SendRequest,
) -> Result<Accepted, ApiError> {
    let prepared = prepare(state, key, request).await?;
    commit(state, key, &prepared).await
}
