//! The suppression list: addresses of a project that are never mailed again. Bounces add
//! to it in `queue::mail::complete`; sends check it in `messages::insert`. Addresses are stored
//! lower-cased by Postgres's `lower()`, as both of those compare them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Suppression {
    pub email: String,
    /// `bounce`, `complaint` or `manual`.
    pub reason: String,
    /// What the upstream said, for bounces; a note, for manual entries.
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Newest first, older than the cursor `(created_at, email)` when given.
pub async fn list(
    pool: &PgPool,
    project_id: Uuid,
    reason: Option<&str>,
    before: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> sqlx::Result<Vec<Suppression>> {
    let (before_at, before_email) = before.unzip();
    sqlx::query_as(
        "SELECT email, reason, detail, created_at FROM suppressions
         WHERE project_id = $1 AND ($2::text IS NULL OR reason = $2)
           AND ($3::timestamptz IS NULL OR (created_at, email) < ($3, $4))
         ORDER BY created_at DESC, email DESC
         LIMIT $5",
    )
    .bind(project_id)
    .bind(reason)
    .bind(before_at)
    .bind(before_email)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn find(
    pool: &PgPool,
    project_id: Uuid,
    email: &str,
) -> sqlx::Result<Option<Suppression>> {
    sqlx::query_as(
        "SELECT email, reason, detail, created_at FROM suppressions WHERE project_id = $1 AND email = lower($2)",
    )
    .bind(project_id)
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// Adds an address; an address already listed keeps its entry. Returns the entry and
/// whether it is new.
pub async fn add(
    pool: &PgPool,
    project_id: Uuid,
    email: &str,
    reason: &str,
    detail: Option<&str>,
) -> sqlx::Result<(Suppression, bool)> {
    loop {
        let inserted: Option<Suppression> = sqlx::query_as(
            "INSERT INTO suppressions (project_id, email, reason, detail) VALUES ($1, lower($2), $3, $4)
             ON CONFLICT DO NOTHING RETURNING email, reason, detail, created_at",
        )
        .bind(project_id)
        .bind(email)
        .bind(reason)
        .bind(detail)
        .fetch_optional(pool)
        .await?;
        if let Some(row) = inserted {
            return Ok((row, true));
        }
        // Deleted again between the two statements: insert once more.
        if let Some(row) = find(pool, project_id, email).await? {
            return Ok((row, false));
        }
    }
}

pub async fn remove(pool: &PgPool, project_id: Uuid, email: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM suppressions WHERE project_id = $1 AND email = lower($2)")
        .bind(project_id)
        .bind(email)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
