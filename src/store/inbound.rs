//! Mail the inbound listener accepted (`inbound_messages`): the queue it waits in (claimed
//! rows are `processing`; the lease work is `inbound::queue::INBOUND_MESSAGES`), what it
//! changed once processed, and the log operators read.
//!
//! A processed message's effects (a recipient bounced or complained, an event, a suppression,
//! an `email.received` delivery) commit in the same transaction as the row's fenced move to
//! `processed`, so a message is applied once even if two processes raced for it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// An accepted message, waiting to be processed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboundJob {
    pub id: Uuid,
    pub attempts: i32,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub raw: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

/// Commits one accepted message; only then does the listener answer 250.
pub async fn insert(
    pool: &PgPool,
    id: Uuid,
    peer: &str,
    mail_from: &str,
    rcpt_to: &[String],
    raw: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO inbound_messages (id, peer, mail_from, rcpt_to, raw) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(peer)
    .bind(mail_from)
    .bind(rcpt_to)
    .bind(raw)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn claim(
    pool: &PgPool,
    owner: Uuid,
    limit: i64,
    lease_secs: f64,
) -> sqlx::Result<Vec<InboundJob>> {
    sqlx::query_as(
        r#"
        WITH due AS (
            SELECT id FROM inbound_messages
            WHERE status = 'pending' AND next_attempt_at <= now()
            ORDER BY next_attempt_at LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        UPDATE inbound_messages i
        SET status = 'processing', attempts = i.attempts + 1, lease_owner = $2,
            lease_until = now() + make_interval(secs => $3)
        FROM due WHERE i.id = due.id
        RETURNING i.id, i.attempts, i.mail_from, i.rcpt_to, i.raw, i.received_at
        "#,
    )
    .bind(limit)
    .bind(owner)
    .bind(lease_secs)
    .fetch_all(pool)
    .await
}

/// The recipient job a VERP token names, with what deciding about a report needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerpTarget {
    pub recipient_id: i64,
    pub message_id: Uuid,
    pub project_id: Uuid,
    pub email: String,
    pub status: String,
    /// The project's own bounce domain, if it has one.
    pub bounce_domain: Option<String>,
}

pub async fn verp_target(pool: &PgPool, recipient_id: i64) -> sqlx::Result<Option<VerpTarget>> {
    sqlx::query_as(
        "SELECT r.id AS recipient_id, r.message_id, m.project_id, r.email, r.status, p.bounce_domain
         FROM recipients r JOIN messages m ON m.id = r.message_id JOIN projects p ON p.id = m.project_id
         WHERE r.id = $1",
    )
    .bind(recipient_id)
    .fetch_optional(pool)
    .await
}

/// Whether recipient job `recipient_id` of message `message_id` already has its `delayed` event.
pub async fn delay_recorded(
    conn: &mut sqlx::PgConnection,
    message_id: Uuid,
    recipient_id: i64,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events
                        WHERE message_id = $1 AND recipient_id = $2 AND type = 'delayed')",
    )
    .bind(message_id)
    .bind(recipient_id)
    .fetch_one(conn)
    .await
}

/// What processing one message changes.
#[derive(Debug, Clone)]
pub enum Effect {
    /// A delivered recipient turns `bounced` (and is suppressed); `email.bounced`.
    Bounce(RecipientReport),
    /// A delivered recipient turns `complained` (and is suppressed); `email.complained`.
    Complaint(RecipientReport),
    /// An `email.delayed` event; the status stays.
    Delay(RecipientReport),
    /// An `email.received` webhook to each of the project's endpoints that want it.
    Received { project_id: Uuid, payload: Value },
}

/// A report about one recipient job, as recorded in its event.
#[derive(Debug, Clone)]
pub struct RecipientReport {
    pub recipient_id: i64,
    pub message_id: Uuid,
    pub email: String,
    pub smtp_code: Option<i32>,
    pub enhanced_code: Option<String>,
    pub smtp_response: Option<String>,
    pub relay_host: Option<String>,
    pub detail: String,
    /// Merged into the webhook's `data` (`async`, `dsn`, `feedback`).
    pub data: Value,
    /// Add the address to the project's suppression list (a permanent failure, a complaint).
    pub suppress: bool,
}

/// The outcome of processing one inbound message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: Uuid,
    pub attempt: i32,
    /// Try again then (a report about a recipient still being delivered); nothing applied.
    pub retry_at: Option<DateTime<Utc>>,
    /// `bounce`, `delay`, `complaint`, `received`, `unmatched`, `forged`, `not_a_report`.
    pub kind: &'static str,
    pub project_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub detail: Option<String>,
    pub effects: Vec<Effect>,
}

/// Records one outcome and applies its effects, in one transaction fenced by the lease.
/// Returns whether the lease still held (otherwise nothing was written).
pub async fn complete(pool: &PgPool, owner: Uuid, p: &Outcome) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let held = sqlx::query(
        "UPDATE inbound_messages
         SET status = CASE WHEN $4::timestamptz IS NULL THEN 'processed' ELSE 'pending' END,
             next_attempt_at = coalesce($4, next_attempt_at),
             processed_at = CASE WHEN $4::timestamptz IS NULL THEN now() END,
             lease_owner = NULL, lease_until = NULL,
             kind = $5, project_id = $6, message_id = $7, detail = $8
         WHERE id = $1 AND attempts = $2 AND lease_owner = $3 AND status = 'processing'",
    )
    .bind(p.id)
    .bind(p.attempt)
    .bind(owner)
    .bind(p.retry_at)
    .bind(p.kind)
    .bind(p.project_id)
    .bind(p.message_id)
    .bind(&p.detail)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !held {
        return Ok(false);
    }
    if p.retry_at.is_none() {
        for effect in &p.effects {
            apply(&mut tx, effect).await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}

async fn apply(tx: &mut sqlx::PgConnection, effect: &Effect) -> sqlx::Result<()> {
    let (report, to, reason) = match effect {
        Effect::Bounce(r) => (r, Some("bounced"), Some("bounce")),
        Effect::Complaint(r) => (r, Some("complained"), Some("complaint")),
        Effect::Delay(r) => (r, None, None),
        Effect::Received {
            project_id,
            payload,
        } => return enqueue_received(tx, *project_id, payload).await,
    };
    let event_type = to.unwrap_or("delayed");
    // MTAs send a delay notice again and again while they retry (and a copy may come twice):
    // one `delayed` event per recipient says it all. The row lock makes two copies processed
    // at once agree on which one records it.
    if to.is_none() {
        // With its message id, the lookup stays in the message's day partition.
        sqlx::query("SELECT 1 FROM recipients WHERE message_id = $2 AND id = $1 FOR NO KEY UPDATE")
            .bind(report.recipient_id)
            .bind(report.message_id)
            .execute(&mut *tx)
            .await?;
        if delay_recorded(&mut *tx, report.message_id, report.recipient_id).await? {
            return Ok(());
        }
    }
    // A status change only from `delivered` (or a complaint about a recipient who bounced
    // later, never the reverse): a second report about the same recipient changes nothing.
    let changed = match to {
        Some(status) => {
            sqlx::query(
                "UPDATE recipients SET status = $2, smtp_code = coalesce($3, smtp_code),
                        enhanced_code = coalesce($4, enhanced_code),
                        smtp_response = coalesce($5, smtp_response), updated_at = now()
                 WHERE message_id = $6 AND id = $1 AND status = 'delivered'",
            )
            .bind(report.recipient_id)
            .bind(status)
            .bind(report.smtp_code)
            .bind(&report.enhanced_code)
            .bind(&report.smtp_response)
            .bind(report.message_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        }
        None => true,
    };
    if !changed {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO events (message_id, recipient_id, recipient, type, smtp_code, enhanced_code,
                             smtp_response, relay_host, detail, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(report.message_id)
    .bind(report.recipient_id)
    .bind(&report.email)
    .bind(event_type)
    .bind(report.smtp_code)
    .bind(&report.enhanced_code)
    .bind(&report.smtp_response)
    .bind(&report.relay_host)
    .bind(&report.detail)
    .bind(&report.data)
    .execute(&mut *tx)
    .await?;
    if let Some(reason) = reason.filter(|_| report.suppress) {
        sqlx::query(
            "INSERT INTO suppressions (project_id, email, reason, detail)
             SELECT m.project_id, lower($2), $3, $4 FROM messages m WHERE m.id = $1
             ON CONFLICT DO NOTHING",
        )
        .bind(report.message_id)
        .bind(&report.email)
        .bind(reason)
        .bind(report.smtp_response.as_deref().unwrap_or(&report.detail))
        .execute(&mut *tx)
        .await?;
    }
    if to.is_some() {
        super::messages::refresh_status(tx, &[report.message_id]).await?;
    }
    Ok(())
}

/// `email.received` is about no stored message, so it is enqueued here rather than by the
/// events trigger: one delivery per enabled endpoint of the project that wants it.
async fn enqueue_received(
    tx: &mut sqlx::PgConnection,
    project_id: Uuid,
    data: &Value,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"
        INSERT INTO webhook_deliveries (endpoint_id, event_type, payload)
        SELECT w.id, 'email.received',
               jsonb_build_object('type', 'email.received',
                                  'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                                  'data', $2::jsonb)
        FROM webhook_endpoints w
        WHERE w.project_id = $1 AND w.enabled
          AND (w.event_types IS NULL OR 'email.received' = ANY (w.event_types))
        "#,
    )
    .bind(project_id)
    .bind(data)
    .execute(tx)
    .await?;
    Ok(())
}

/// One entry of the inbound log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct InboundEntry {
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    /// The client's IP address.
    pub peer: String,
    /// The envelope sender; empty for the null return path of a bounce.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// `pending`, `processing` or `processed`.
    pub status: String,
    /// What it came to: `bounce`, `delay`, `complaint`, `received`, `unmatched`, `forged`,
    /// `not_a_report`.
    pub kind: Option<String>,
    pub project_id: Option<Uuid>,
    /// The message a report was about.
    pub email_id: Option<Uuid>,
    pub detail: Option<String>,
    /// Bytes of the message as received.
    pub size: i32,
}

/// The newest entries first (ids are time-ordered), optionally of one kind, before a cursor.
pub async fn list(
    pool: &PgPool,
    kind: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<InboundEntry>> {
    sqlx::query_as(
        r#"
        SELECT id, received_at, peer, mail_from, rcpt_to, status, kind, project_id,
               message_id AS email_id, detail, length(raw) AS size
        FROM inbound_messages
        WHERE ($1::text IS NULL OR kind = $1) AND ($2::uuid IS NULL OR id < $2)
        ORDER BY id DESC
        LIMIT $3
        "#,
    )
    .bind(kind)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Deletes up to `batch` processed entries older than `days`.
pub async fn purge_processed(pool: &PgPool, days: i64, batch: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM inbound_messages WHERE id IN (
             SELECT id FROM inbound_messages
             WHERE status = 'processed' AND received_at < now() - make_interval(days => $1::int)
             LIMIT $2)",
    )
    .bind(days)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
