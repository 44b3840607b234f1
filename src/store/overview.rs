//! What the console's overview shows: a project's mail over a recent window, counted by
//! recipient status and by day, and its recipients still waiting.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// One count of recipients of messages created since a time.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DayCount {
    /// Start of the UTC day the messages were created.
    pub day: DateTime<Utc>,
    pub status: String,
    pub recipients: i64,
}

/// Messages accepted since `since`.
pub async fn messages_since(
    pool: &PgPool,
    project_id: Uuid,
    since: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM messages WHERE project_id = $1 AND created_at >= $2")
        .bind(project_id)
        .bind(since)
        .fetch_one(pool)
        .await
}

/// Recipients of messages created since `since`, by UTC day and current status.
pub async fn recipients_by_day(
    pool: &PgPool,
    project_id: Uuid,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<DayCount>> {
    sqlx::query_as(
        "SELECT date_trunc('day', m.created_at, 'UTC') AS day, r.status, count(*) AS recipients
         FROM messages m JOIN recipients r ON r.message_id = m.id
         WHERE m.project_id = $1 AND m.created_at >= $2
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(project_id)
    .bind(since)
    .fetch_all(pool)
    .await
}

/// Recipients of messages created since `since`, by current status.
pub async fn recipients_since(
    pool: &PgPool,
    project_id: Uuid,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT r.status, count(*) FROM messages m JOIN recipients r ON r.message_id = m.id
         WHERE m.project_id = $1 AND m.created_at >= $2 GROUP BY 1 ORDER BY 1",
    )
    .bind(project_id)
    .bind(since)
    .fetch_all(pool)
    .await
}

/// The project's recipients waiting for a relay or in its hands, by status: its share of the
/// queue depth (`queue::mail::depth` counts every project's).
pub async fn queue_depth(pool: &PgPool, project_id: Uuid) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT r.status, count(*) FROM recipients r JOIN messages m ON m.id = r.message_id
         WHERE m.project_id = $1 AND r.status IN ('queued', 'deferred', 'sending', 'scheduled')
         GROUP BY 1 ORDER BY 1",
    )
    .bind(project_id)
    .fetch_all(pool)
    .await
}
