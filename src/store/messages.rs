//! Accepted messages, their recipients and their event timeline.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// A message ready to commit: validated, rendered, with its id assigned.
pub struct AcceptedMessage<'a> {
    pub id: Uuid,
    pub project_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub from: &'a str,
    pub subject: &'a str,
    pub message_id: &'a str,
    pub mime: &'a [u8],
    pub tags: &'a [String],
    pub metadata: serde_json::Value,
    pub relay: Option<&'a str>,
    pub sandbox: bool,
    /// (address, kind) in request order.
    pub recipients: Vec<(String, &'static str)>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RecipientState {
    pub email: String,
    #[serde(skip)]
    pub kind: String,
    pub status: String,
}

/// Commits the message, its recipients (suppressed ones marked so) and their first events
/// in one statement: one round trip, and nothing is acknowledged before it is durable.
pub async fn insert(pool: &PgPool, m: &AcceptedMessage<'_>) -> sqlx::Result<Vec<RecipientState>> {
    let emails: Vec<&str> = m.recipients.iter().map(|(e, _)| e.as_str()).collect();
    let kinds: Vec<&str> = m.recipients.iter().map(|(_, k)| *k).collect();
    sqlx::query_as(
        r#"
        WITH input AS (
            SELECT t.email, t.kind, t.ord,
                   EXISTS (SELECT 1 FROM suppressions s
                           WHERE s.project_id = $2 AND s.email = lower(t.email)) AS suppressed
            FROM unnest($11::text[], $12::text[]) WITH ORDINALITY AS t(email, kind, ord)
        ),
        msg AS (
            INSERT INTO messages (id, project_id, api_key_id, status, from_addr, subject, message_id,
                                  mime, tags, metadata, relay, sandbox)
            SELECT $1, $2, $3,
                   CASE WHEN bool_and(suppressed) THEN 'suppressed' ELSE 'queued' END,
                   $4, $5, $6, $7, $8, $9, $10, $13
            FROM input
            RETURNING id
        ),
        rcpt AS (
            INSERT INTO recipients (message_id, email, kind, status)
            SELECT $1, email, kind, CASE WHEN suppressed THEN 'suppressed' ELSE 'queued' END
            FROM input ORDER BY ord
            RETURNING id, email, kind, status
        ),
        ev AS (
            INSERT INTO events (message_id, recipient_id, recipient, type, detail)
            SELECT $1, id, email, status,
                   CASE WHEN status = 'suppressed' THEN 'the address is on the suppression list' END
            FROM rcpt
        )
        SELECT email, kind, status FROM rcpt ORDER BY id
        "#,
    )
    .bind(m.id)
    .bind(m.project_id)
    .bind(m.api_key_id)
    .bind(m.from)
    .bind(m.subject)
    .bind(m.message_id)
    .bind(m.mime)
    .bind(m.tags)
    .bind(&m.metadata)
    .bind(m.relay)
    .bind(&emails)
    .bind(&kinds)
    .bind(m.sandbox)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub status: String,
    pub from_addr: String,
    pub subject: String,
    pub message_id: String,
    pub tags: Vec<String>,
    pub metadata: serde_json::Value,
    pub relay: Option<String>,
    pub sandbox: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RecipientRow {
    pub email: String,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub smtp_code: Option<i32>,
    pub enhanced_code: Option<String>,
    pub smtp_response: Option<String>,
    pub relay_host: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventRow {
    #[serde(rename = "type")]
    pub kind: String,
    pub recipient: String,
    pub at: DateTime<Utc>,
    pub attempt: Option<i32>,
    pub smtp_code: Option<i32>,
    pub enhanced_code: Option<String>,
    pub smtp_response: Option<String>,
    pub relay_host: Option<String>,
    pub detail: Option<String>,
}

/// A message of this project only: another project's id reads as absent.
pub async fn find(pool: &PgPool, project_id: Uuid, id: Uuid) -> sqlx::Result<Option<MessageRow>> {
    sqlx::query_as(
        "SELECT id, status, from_addr, subject, message_id, tags, metadata, relay, sandbox, created_at, updated_at
         FROM messages WHERE id = $1 AND project_id = $2",
    )
    .bind(id)
    .bind(project_id)
    .fetch_optional(pool)
    .await
}

pub async fn recipients(pool: &PgPool, id: Uuid) -> sqlx::Result<Vec<RecipientRow>> {
    sqlx::query_as(
        "SELECT email, kind, status, attempts,
                CASE WHEN status IN ('queued', 'deferred', 'scheduled') THEN next_attempt_at END AS next_attempt_at,
                smtp_code, enhanced_code, smtp_response, relay_host, updated_at
         FROM recipients WHERE message_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

pub async fn events(pool: &PgPool, id: Uuid) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(
        "SELECT type AS kind, recipient, at, attempt, smtp_code, enhanced_code, smtp_response, relay_host, detail
         FROM events WHERE message_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

pub async fn source(pool: &PgPool, project_id: Uuid, id: Uuid) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT mime FROM messages WHERE id = $1 AND project_id = $2")
        .bind(id)
        .bind(project_id)
        .fetch_optional(pool)
        .await
}
