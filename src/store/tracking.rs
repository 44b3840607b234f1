//! Opens and clicks, recorded as events of the message (and so as webhooks, by the events
//! trigger), and the count of a message's opens (`message_opens`). One statement each: the
//! recipient is the message's only one, or none.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// What an open came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// The message is gone (retention deleted it).
    Gone,
    /// Counted; recorded as an `opened` event only when `recorded`.
    Counted { count: i64, recorded: bool },
}

/// Counts an open of message `id`, and records it as an `opened` event with `data` (user
/// agent, IP) when it is the message's first or the last recorded one is more than
/// `window_secs` old. The event says `first_open` and the count so far (`opens`).
pub async fn record_open(
    pool: &PgPool,
    id: Uuid,
    data: &Value,
    window_secs: u64,
) -> sqlx::Result<Open> {
    let row: Option<(i64, bool)> = sqlx::query_as(
        r#"
        WITH msg AS (
            -- Held against retention's delete (which skips locked rows) until this commits.
            SELECT id FROM messages WHERE id = $1 FOR KEY SHARE
        ),
        hit AS (
            INSERT INTO message_opens AS o
                (message_id, opens, first_at, last_at, recorded_at, recorded_opens)
            SELECT id, 1, now(), now(), now(), 1 FROM msg
            ON CONFLICT (message_id) DO UPDATE SET
                opens = o.opens + 1,
                last_at = now(),
                recorded_at = CASE WHEN o.recorded_at <= now() - make_interval(secs => $3)
                                   THEN now() ELSE o.recorded_at END,
                recorded_opens = CASE WHEN o.recorded_at <= now() - make_interval(secs => $3)
                                      THEN o.opens + 1 ELSE o.recorded_opens END
            RETURNING message_id, opens, recorded_opens = opens AS recorded
        ),
        event AS (
            INSERT INTO events (message_id, recipient_id, recipient, type, data)
            SELECT m.id, r.id, coalesce(r.email, ''), 'opened',
                   $2 || jsonb_build_object('first_open', hit.opens = 1, 'opens', hit.opens)
            FROM hit JOIN messages m ON m.id = hit.message_id
            LEFT JOIN LATERAL (
                -- The recipient: the message's only one, else none.
                SELECT CASE WHEN count(*) = 1 THEN min(id) END AS id,
                       CASE WHEN count(*) = 1 THEN min(email) END AS email
                FROM recipients WHERE message_id = m.id
            ) r ON true
            WHERE hit.recorded
        )
        SELECT opens, recorded FROM hit
        "#,
    )
    .bind(id)
    .bind(data)
    .bind(window_secs as f64)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => Open::Gone,
        Some((count, recorded)) => Open::Counted { count, recorded },
    })
}

/// Records a `clicked` event for message `id` with `data` (user agent, IP, URL). Returns
/// false when the message is gone.
pub async fn record_click(pool: &PgPool, id: Uuid, data: &Value) -> sqlx::Result<bool> {
    let done = sqlx::query(
        r#"
        INSERT INTO events (message_id, recipient_id, recipient, type, data)
        SELECT m.id, r.id, coalesce(r.email, ''), 'clicked', $2
        FROM messages m
        LEFT JOIN LATERAL (
            -- The recipient: the message's only one, else none.
            SELECT CASE WHEN count(*) = 1 THEN min(id) END AS id,
                   CASE WHEN count(*) = 1 THEN min(email) END AS email
            FROM recipients WHERE message_id = m.id
        ) r ON true
        WHERE m.id = $1
        "#,
    )
    .bind(id)
    .bind(data)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records an `unsubscribed` event for `email` on message `message` of `project`, with
/// `data`. False when the message is gone (retention) or is not that project's.
pub async fn record_unsubscribe(
    pool: &PgPool,
    project: Uuid,
    message: Uuid,
    email: &str,
    data: &Value,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        r#"
        INSERT INTO events (message_id, recipient_id, recipient, type, data)
        SELECT m.id, r.id, $3, 'unsubscribed', $4
        FROM messages m
        LEFT JOIN recipients r ON r.message_id = m.id AND lower(r.email) = lower($3)
        WHERE m.id = $1 AND m.project_id = $2
        LIMIT 1
        "#,
    )
    .bind(message)
    .bind(project)
    .bind(email)
    .bind(data)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether message `id` still exists: a token of a deleted message works no more.
pub async fn exists(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await
}

/// How often a message's pixel was loaded, recorded or not.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Opens {
    /// Loads of the pixel counted (within `tracking.per_ip_per_minute` and
    /// `per_token_per_minute`), including those within `tracking.open_window_secs` of a
    /// recorded one, which make no event.
    pub count: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

/// The open count of message `id`; `None` until it is first opened.
pub async fn opens(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Opens>> {
    sqlx::query_as(
        "SELECT opens AS count, first_at, last_at FROM message_opens WHERE message_id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}
