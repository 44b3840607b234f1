//! Turning a send request into committed rows: validate, render the MIME once, commit.
//! Shared by every way mail comes in: single and batch HTTP sends (`prepare`, `commit`) and
//! SMTP submission, whose MIME arrives ready (`prepare_raw`, `commit_raw`).

use std::collections::HashMap;

use serde::Serialize;
use uuid::Uuid;

use crate::{
    api::{AppState, email_request::SendRequest, error::ApiError},
    domain::{EmailAddress, NewEmail, RecipientKind, status::summarise},
    mime,
    smtp::message::{self as raw, MessageError, Submitted},
    store::{
        api_keys::AuthenticatedKey,
        messages::{AcceptedMessage, Submitter},
    },
    templates,
};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecipientSummary {
    pub email: String,
    pub status: String,
}

/// The answer to an accepted send: committed, and it will reach a terminal status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    let max_schedule = chrono::Duration::days(state.config.http.max_schedule_days);
    let email = request
        .validate(|name| state.relays.contains(name), max_schedule)
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

/// Commits prepared messages together (one statement, perhaps shared with other sends: see
/// `store::group_commit`) and wakes the workers. Only then may the caller answer 2xx.
/// Answers come back in input order.
pub async fn commit(
    state: &AppState,
    key: &AuthenticatedKey,
    prepared: Vec<Prepared>,
) -> Result<Vec<Accepted>, ApiError> {
    if prepared.is_empty() {
        return Ok(Vec::new());
    }
    let by = submitter(state, key.project_id, Some(key));
    let mut batch = Vec::with_capacity(prepared.len());
    for p in prepared {
        let email = p.email;
        batch.push(AcceptedMessage {
            id: p.id,
            by,
            metadata: serde_json::to_value(&email.metadata).map_err(anyhow::Error::from)?,
            recipients: email
                .recipients()
                .into_iter()
                .map(|(kind, addr)| (addr.as_str().to_string(), kind.as_str()))
                .collect(),
            from: email.from.email.as_str().to_string(),
            subject: email.subject,
            message_id: p.message_id,
            mime: p.mime,
            tags: email.tags,
            relay: email.relay,
            send_at: email.send_at,
        });
    }
    commit_accepted(state, key.project_id, batch).await
}

/// Who a send counts as. Test keys never relay, whatever the configuration says.
fn submitter(state: &AppState, project_id: Uuid, key: Option<&AuthenticatedKey>) -> Submitter {
    Submitter {
        project_id,
        api_key_id: key.map(|k| k.id),
        sandbox: key.is_some_and(|k| k.test_mode) || state.relays.is_sandbox(),
    }
}

/// The commit every way in shares: group commit, count, wake the workers, and one answer per
/// message in input order.
async fn commit_accepted(
    state: &AppState,
    project_id: Uuid,
    batch: Vec<AcceptedMessage>,
) -> Result<Vec<Accepted>, ApiError> {
    let ids: Vec<Uuid> = batch.iter().map(|m| m.id).collect();
    let rows = state.commits.commit(batch).await?;
    metrics::counter!("mailgate_messages_accepted_total", "project" => project_id.to_string())
        .increment(ids.len() as u64);
    state.waker.wake();
    let mut by_message: HashMap<Uuid, Vec<RecipientSummary>> = HashMap::new();
    for r in rows {
        by_message
            .entry(r.message_id)
            .or_default()
            .push(RecipientSummary {
                email: r.email,
                status: r.status,
            });
    }
    Ok(ids
        .into_iter()
        .map(|id| {
            let recipients = by_message.remove(&id).unwrap_or_default();
            Accepted {
                id,
                status: summarise(recipients.iter().map(|r| r.status.as_str())).to_string(),
                recipients,
            }
        })
        .collect())
}

/// Validate, render and commit one message.
pub async fn submit(
    state: &AppState,
    key: &AuthenticatedKey,
    request: SendRequest,
) -> Result<Accepted, ApiError> {
    let prepared = prepare(state, key, request).await?;
    the_one(commit(state, key, vec![prepared]).await?)
}

/// A message submitted as MIME (SMTP): its envelope, and the bytes to relay as they are.
pub struct PreparedRaw {
    pub id: Uuid,
    /// The envelope sender (MAIL FROM), used as the return path at relay time.
    pub from: EmailAddress,
    /// Envelope recipients, each once; the kind says whether the headers show it (To, Cc).
    pub recipients: Vec<(RecipientKind, EmailAddress)>,
    pub message: Submitted,
}

/// Reads submitted MIME for an envelope. The bytes stay as given, apart from the header
/// edits `smtp::message` describes.
pub fn prepare_raw(
    from: EmailAddress,
    recipients: Vec<EmailAddress>,
    data: &[u8],
) -> Result<PreparedRaw, MessageError> {
    let id = Uuid::now_v7();
    let new_message_id = format!("<{}@{}>", id.simple(), from.domain());
    let message = raw::read(data, &new_message_id, chrono::Utc::now())?;
    let recipients = recipients
        .into_iter()
        .map(|addr| {
            let lower = addr.as_str().to_ascii_lowercase();
            let kind = if message.to.contains(&lower) {
                RecipientKind::To
            } else if message.cc.contains(&lower) {
                RecipientKind::Cc
            } else {
                RecipientKind::Bcc
            };
            (kind, addr)
        })
        .collect();
    Ok(PreparedRaw {
        id,
        from,
        recipients,
        message,
    })
}

/// Commits one submitted message of `project_id` (sent with `key`, unless it came from a
/// trusted network) in the same statement as HTTP sends, and wakes the workers.
pub async fn commit_raw(
    state: &AppState,
    project_id: Uuid,
    key: Option<&AuthenticatedKey>,
    prepared: PreparedRaw,
) -> Result<Accepted, ApiError> {
    let m = prepared.message;
    let message = AcceptedMessage {
        id: prepared.id,
        by: submitter(state, project_id, key),
        metadata: serde_json::to_value(&m.metadata).map_err(anyhow::Error::from)?,
        from: prepared.from.as_str().to_string(),
        subject: m.subject,
        message_id: m.message_id,
        mime: m.mime,
        tags: m.tags,
        relay: None,
        send_at: None,
        recipients: prepared
            .recipients
            .iter()
            .map(|(kind, addr)| (addr.as_str().to_string(), kind.as_str()))
            .collect(),
    };
    the_one(commit_accepted(state, project_id, vec![message]).await?)
}

/// The answer to a commit of one message.
fn the_one(mut accepted: Vec<Accepted>) -> Result<Accepted, ApiError> {
    accepted
        .pop()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("commit returned no answer")))
}
