//! Webhook endpoints and their delivery queue.
//!
//! Deliveries for email events are enqueued by the `events_enqueue_webhooks` trigger (see
//! `migrations/0005_webhooks.sql`), in the transaction that records the event. The worker
//! `claim`s due deliveries with `FOR UPDATE SKIP LOCKED` and a lease, fairly across endpoints
//! and never more than a few per endpoint at once, then `record`s each attempt; the lease
//! work shared by every queue is `webhooks::queue::DELIVERIES`. As with mail,
//! `(id, attempts, lease_owner)` fences every write of an outcome.

use chrono::{DateTime, Utc};
use serde::Serialize;
// Only the constant column lists are formatted into these statements; values are bound.
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::WebhookFormat;

/// An endpoint as stored, without its secrets.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// `None`: every event type.
    pub event_types: Option<Vec<String>>,
    /// How deliveries are shaped and signed: `standard`, `resend` or `sendgrid`.
    pub format: WebhookFormat,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// When the previous secret stops signing, while it still does.
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ENDPOINT_COLUMNS: &str =
    "id, url, description, event_types, format, enabled, disabled_reason, disabled_at,
    CASE WHEN previous_secret_until > now() THEN previous_secret_until END AS previous_secret_until,
    failing_since, last_success_at, created_at, updated_at";

pub struct NewEndpoint<'a> {
    pub url: &'a str,
    pub description: Option<&'a str>,
    pub event_types: Option<&'a [String]>,
    pub format: WebhookFormat,
    pub enabled: bool,
    pub secret: &'a str,
}

pub async fn create(
    pool: &PgPool,
    project_id: Uuid,
    new: &NewEndpoint<'_>,
) -> sqlx::Result<EndpointRow> {
    sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO webhook_endpoints (id, project_id, url, description, event_types, enabled, secret, format)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {ENDPOINT_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(project_id)
    .bind(new.url)
    .bind(new.description)
    .bind(new.event_types)
    .bind(new.enabled)
    .bind(new.secret)
    .bind(new.format)
    .fetch_one(pool)
    .await
}

/// Oldest first: the order they were set up in.
pub async fn list(pool: &PgPool, project_id: Uuid) -> sqlx::Result<Vec<EndpointRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE project_id = $1 ORDER BY created_at, id"
    )))
    .bind(project_id)
    .fetch_all(pool)
    .await
}

/// An endpoint of this project only: another project's id reads as absent.
pub async fn find(pool: &PgPool, project_id: Uuid, id: Uuid) -> sqlx::Result<Option<EndpointRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND project_id = $2"
    )))
    .bind(id)
    .bind(project_id)
    .fetch_optional(pool)
    .await
}

/// A partial update; `None` leaves a field as it is.
#[derive(Default)]
pub struct EndpointChanges<'a> {
    pub url: Option<&'a str>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<&'a str>>,
    /// `Some(None)` subscribes to every event type.
    pub event_types: Option<Option<&'a [String]>>,
    pub format: Option<WebhookFormat>,
    pub enabled: Option<bool>,
}

/// Applies changes. Enabling clears the reason it was disabled and its failure streak (so
/// does a new URL); disabling fails whatever was still pending for it.
pub async fn update(
    pool: &PgPool,
    project_id: Uuid,
    id: Uuid,
    c: &EndpointChanges<'_>,
) -> sqlx::Result<Option<EndpointRow>> {
    let mut tx = pool.begin().await?;
    let row: Option<EndpointRow> = sqlx::query_as(AssertSqlSafe(format!(
        "UPDATE webhook_endpoints SET
             url = coalesce($3, url),
             description = CASE WHEN $4 THEN $5 ELSE description END,
             event_types = CASE WHEN $6 THEN $7 ELSE event_types END,
             format = coalesce($9, format),
             enabled = coalesce($8, enabled),
             disabled_reason = CASE WHEN $8 IS NULL OR $8 = enabled THEN disabled_reason
                                    WHEN $8 THEN NULL ELSE 'disabled through the API' END,
             disabled_at = CASE WHEN $8 IS NULL OR $8 = enabled THEN disabled_at
                                WHEN $8 THEN NULL ELSE now() END,
             -- Re-enabled, or pointed elsewhere: a fresh start for the failure streak.
             failing_since = CASE WHEN ($8 AND NOT enabled) OR $3 <> url THEN NULL
                                  ELSE failing_since END,
             updated_at = now()
         WHERE id = $1 AND project_id = $2
         RETURNING {ENDPOINT_COLUMNS}"
    )))
    .bind(id)
    .bind(project_id)
    .bind(c.url)
    .bind(c.description.is_some())
    .bind(c.description.flatten())
    .bind(c.event_types.is_some())
    .bind(c.event_types.flatten())
    .bind(c.enabled)
    .bind(c.format)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(r) = &row
        && !r.enabled
    {
        fail_pending(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(row)
}

pub async fn delete(pool: &PgPool, project_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND project_id = $2")
        .bind(id)
        .bind(project_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Installs a new secret; the current one keeps signing for `overlap_secs`.
pub async fn rotate_secret(
    pool: &PgPool,
    project_id: Uuid,
    id: Uuid,
    new_secret: &str,
    overlap_secs: f64,
) -> sqlx::Result<Option<EndpointRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "UPDATE webhook_endpoints SET previous_secret = secret, secret = $3,
             previous_secret_until = now() + make_interval(secs => $4), updated_at = now()
         WHERE id = $1 AND project_id = $2
         RETURNING {ENDPOINT_COLUMNS}"
    )))
    .bind(id)
    .bind(project_id)
    .bind(new_secret)
    .bind(overlap_secs)
    .fetch_optional(pool)
    .await
}

/// Disables an endpoint with the reason shown to its owner; its pending deliveries fail.
pub async fn disable(tx: &mut PgConnection, id: Uuid, reason: &str) -> sqlx::Result<()> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, disabled_at = now(),
             updated_at = now()
         WHERE id = $1 AND enabled",
    )
    .bind(id)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 1 {
        tracing::warn!(endpoint = %id, reason, "webhook endpoint disabled");
        fail_pending(tx, id).await?;
    }
    Ok(())
}

/// A disabled endpoint gets nothing: what waited for it is failed (and can be replayed).
async fn fail_pending(tx: &mut PgConnection, endpoint_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'failed', error = 'not sent: the endpoint is disabled',
             updated_at = now()
         WHERE endpoint_id = $1 AND status = 'pending'",
    )
    .bind(endpoint_id)
    .execute(tx)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Deliveries

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub response_status: Option<i32>,
    pub latency_ms: Option<i32>,
    pub error: Option<String>,
    pub log: serde_json::Value,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.event_type, d.status, d.attempts,
    CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
    d.response_status, d.latency_ms, d.error, d.log, d.payload, d.created_at, d.updated_at";

/// Queues an event built outside the database (`webhook.test`) for one endpoint.
pub async fn enqueue(
    pool: &PgPool,
    endpoint_id: Uuid,
    event_type: &str,
    payload: &serde_json::Value,
) -> sqlx::Result<DeliveryRow> {
    sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO webhook_deliveries AS d (endpoint_id, event_type, payload) VALUES ($1, $2, $3)
         RETURNING {DELIVERY_COLUMNS}"
    )))
    .bind(endpoint_id)
    .bind(event_type)
    .bind(payload)
    .fetch_one(pool)
    .await
}

/// Newest first, older than the cursor `(created_at, id)` when given.
pub async fn deliveries(
    pool: &PgPool,
    endpoint_id: Uuid,
    status: Option<&str>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<DeliveryRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
         WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.status = $2)
           AND ($3::timestamptz IS NULL OR (d.created_at, d.id) < ($3, $4))
         ORDER BY d.created_at DESC, d.id DESC
         LIMIT $5"
    )))
    .bind(endpoint_id)
    .bind(status)
    .bind(before.map(|b| b.0))
    .bind(before.map(|b| b.1))
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub enum Replay {
    Queued(Box<DeliveryRow>),
    /// An attempt is running right now.
    InProgress,
    NotFound,
}

/// Queues one more attempt of a delivery, now, with the same `webhook-id` and body.
pub async fn replay(pool: &PgPool, endpoint_id: Uuid, id: Uuid) -> sqlx::Result<Replay> {
    let row: Option<DeliveryRow> = sqlx::query_as(AssertSqlSafe(format!(
        "UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = now(), lease_owner = NULL,
             lease_until = NULL, updated_at = now()
         WHERE d.id = $1 AND d.endpoint_id = $2 AND d.status <> 'sending'
         RETURNING {DELIVERY_COLUMNS}"
    )))
    .bind(id)
    .bind(endpoint_id)
    .fetch_optional(pool)
    .await?;
    if let Some(row) = row {
        return Ok(Replay::Queued(Box::new(row)));
    }
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2")
            .bind(id)
            .bind(endpoint_id)
            .fetch_optional(pool)
            .await?;
    Ok(if exists.is_some() {
        Replay::InProgress
    } else {
        Replay::NotFound
    })
}

/// A claimed delivery: what to send, where, and with which secrets.
#[derive(Clone, sqlx::FromRow)]
pub struct DeliveryJob {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_type: String,
    /// The JSON body, exactly as sent and signed.
    pub body: String,
    /// This attempt's number, starting at 1.
    pub attempts: i32,
    pub url: String,
    /// The endpoint's delivery format.
    pub format: WebhookFormat,
    /// The project's ECDSA key (PKCS#8) that signs `sendgrid` deliveries, once made.
    pub signing_key: Option<Vec<u8>>,
    pub secret: String,
    /// The secret before the last rotation, while it still signs.
    pub previous_secret: Option<String>,
}

// By hand, so that a logged job never shows its secrets.
impl std::fmt::Debug for DeliveryJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryJob")
            .field("id", &self.id)
            .field("endpoint_id", &self.endpoint_id)
            .field("event_type", &self.event_type)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Claims up to `limit` due deliveries. Endpoints are visited in random order and each gives
/// at most `per_endpoint` minus what it already has in flight, so a slow or dead endpoint with
/// a backlog can neither take every slot nor keep the others waiting behind it.
pub async fn claim(
    pool: &PgPool,
    owner: Uuid,
    limit: i64,
    per_endpoint: i64,
    lease_secs: f64,
) -> sqlx::Result<Vec<DeliveryJob>> {
    sqlx::query_as(
        r#"
        WITH picked AS (
            SELECT d.id
            FROM (SELECT id FROM webhook_endpoints WHERE enabled ORDER BY random()) w
            CROSS JOIN LATERAL (
                SELECT d.id FROM webhook_deliveries d
                WHERE d.endpoint_id = w.id AND d.status = 'pending' AND d.next_attempt_at <= now()
                ORDER BY d.next_attempt_at
                LIMIT greatest($3 - (SELECT count(*) FROM webhook_deliveries s
                                     WHERE s.endpoint_id = w.id AND s.status = 'sending'), 0)
                FOR UPDATE SKIP LOCKED
            ) d
            LIMIT $1
        ), claimed AS (
            UPDATE webhook_deliveries d
            SET status = 'sending', attempts = d.attempts + 1, lease_owner = $2,
                lease_until = now() + make_interval(secs => $4), updated_at = now()
            FROM picked WHERE d.id = picked.id
            RETURNING d.id, d.endpoint_id, d.event_type, d.payload, d.attempts
        )
        SELECT c.id, c.endpoint_id, c.event_type, c.payload::text AS body, c.attempts, w.url, w.format,
               k.private_key AS signing_key, w.secret,
               CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END AS previous_secret
        FROM claimed c JOIN webhook_endpoints w ON w.id = c.endpoint_id
        LEFT JOIN webhook_signing_keys k ON k.project_id = w.project_id
        "#,
    )
    .bind(limit)
    .bind(owner)
    .bind(per_endpoint)
    .bind(lease_secs)
    .fetch_all(pool)
    .await
}

/// What became of one attempt: the webhook queue's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub response_status: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    pub next: Next,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Succeeded,
    RetryAt(DateTime<Utc>),
    /// Out of retries.
    Failed,
    /// The endpoint asked to be forgotten (410): fail and disable it.
    Gone,
}

/// How many attempts the delivery log keeps.
const LOG_KEEP: i32 = 20;

/// Records an attempt and its effect on the endpoint's health, in one transaction. An
/// endpoint failing without a success for `disable_after_secs` is disabled, and says why.
/// Returns false when the attempt was no longer ours to record (its lease was taken over).
pub async fn record(
    pool: &PgPool,
    owner: Uuid,
    a: &Outcome,
    disable_after_secs: f64,
) -> sqlx::Result<bool> {
    let (status, next_at) = match &a.next {
        Next::Succeeded => ("succeeded", None),
        Next::RetryAt(at) => ("pending", Some(*at)),
        Next::Failed | Next::Gone => ("failed", None),
    };
    let entry = serde_json::json!({
        "attempt": a.attempt,
        "at": a.started_at,
        "response_status": a.response_status,
        "latency_ms": a.latency_ms,
        "error": a.error,
    });
    let mut tx = pool.begin().await?;
    let endpoint: Option<Uuid> = sqlx::query_scalar(
        "UPDATE webhook_deliveries SET status = $4, next_attempt_at = coalesce($5, next_attempt_at),
             lease_owner = NULL, lease_until = NULL, response_status = $6, latency_ms = $7, error = $8,
             log = CASE WHEN jsonb_array_length(log) >= $10 THEN log - 0 ELSE log END || jsonb_build_array($9::jsonb),
             updated_at = now()
         WHERE id = $1 AND attempts = $2 AND lease_owner = $3 AND status IN ('sending', 'pending')
         RETURNING endpoint_id",
    )
    .bind(a.delivery_id)
    .bind(a.attempt)
    .bind(owner)
    .bind(status)
    .bind(next_at)
    .bind(a.response_status)
    .bind(a.latency_ms)
    .bind(&a.error)
    .bind(&entry)
    .bind(LOG_KEEP)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(endpoint) = endpoint else {
        return Ok(false);
    };
    match a.next {
        Next::Succeeded => {
            sqlx::query(
                "UPDATE webhook_endpoints SET last_success_at = now(), failing_since = NULL WHERE id = $1",
            )
            .bind(endpoint)
            .execute(&mut *tx)
            .await?;
        }
        Next::Gone => {
            disable(
                &mut tx,
                endpoint,
                "disabled automatically: the endpoint answered 410 Gone",
            )
            .await?;
        }
        Next::RetryAt(_) | Next::Failed => {
            let (enabled, since, too_long): (bool, DateTime<Utc>, bool) = sqlx::query_as(
                "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now())
                 WHERE id = $1
                 RETURNING enabled, failing_since, failing_since <= now() - make_interval(secs => $2)",
            )
            .bind(endpoint)
            .bind(disable_after_secs)
            .fetch_one(&mut *tx)
            .await?;
            if !enabled {
                // Disabled while this attempt ran: no retry will be claimed, so say so now.
                fail_pending(&mut tx, endpoint).await?;
            } else if too_long {
                let reason = format!(
                    "disabled automatically: every delivery has failed since {} (no success for over {})",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    human_duration(disable_after_secs)
                );
                disable(&mut tx, endpoint, &reason).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(true)
}

fn human_duration(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        s if s >= 86400 && s % 86400 == 0 => format!("{} days", s / 86400),
        s if s >= 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{s} s"),
    }
}

/// Deletes up to `batch` finished deliveries older than `days`.
pub async fn purge_finished(pool: &PgPool, days: i64, batch: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE id IN (
             SELECT id FROM webhook_deliveries
             WHERE status IN ('succeeded', 'failed') AND created_at < now() - make_interval(days => $1::int)
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(days)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The project's public event signing key (base64 DER), if it has one.
pub async fn signing_public_key(pool: &PgPool, project_id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT public_key FROM webhook_signing_keys WHERE project_id = $1")
        .bind(project_id)
        .fetch_optional(pool)
        .await
}

/// Keeps a new key pair for the project unless it has one already; returns the public key
/// in force (the first one saved wins a race).
pub async fn save_signing_key(
    pool: &PgPool,
    project_id: Uuid,
    private_key: &[u8],
    public_key: &str,
) -> sqlx::Result<String> {
    sqlx::query(
        "INSERT INTO webhook_signing_keys (project_id, private_key, public_key)
         VALUES ($1, $2, $3) ON CONFLICT (project_id) DO NOTHING",
    )
    .bind(project_id)
    .bind(private_key)
    .bind(public_key)
    .execute(pool)
    .await?;
    sqlx::query_scalar("SELECT public_key FROM webhook_signing_keys WHERE project_id = $1")
        .bind(project_id)
        .fetch_one(pool)
        .await
}
