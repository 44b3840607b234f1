//! Idempotency keys: the first response to (project, key), replayed for the same request.

use sqlx::PgPool;
use uuid::Uuid;

pub enum Claim {
    /// First use of the key: process the request, then `finish` (or `abandon`).
    Fresh,
    /// Same key, same request, already answered: replay this.
    Replay {
        status: u16,
        body: serde_json::Value,
    },
    /// Same key, different request.
    Mismatch,
    /// Same key, same request, still being processed elsewhere.
    InProgress,
}

/// An in-progress claim older than this is taken over: its request died with its process.
const ABANDONED_AFTER_SECS: f64 = 60.0;

pub async fn claim(
    pool: &PgPool,
    project_id: Uuid,
    key: &str,
    request_hash: &[u8],
) -> sqlx::Result<Claim> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (project_id, key, request_hash) VALUES ($1, $2, $3)
         ON CONFLICT (project_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, created_at = now()
             WHERE idempotency_keys.response_status IS NULL
               AND idempotency_keys.request_hash = EXCLUDED.request_hash
               AND idempotency_keys.created_at < now() - make_interval(secs => $4)",
    )
    .bind(project_id)
    .bind(key)
    .bind(request_hash)
    .bind(ABANDONED_AFTER_SECS)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh);
    }
    let row: Option<(Vec<u8>, Option<i32>, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE project_id = $1 AND key = $2",
    )
    .bind(project_id)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        // Purged between the two statements: treat as new on the client's retry.
        None => Claim::InProgress,
        Some((hash, _, _)) if hash != request_hash => Claim::Mismatch,
        Some((_, Some(status), Some(body))) => Claim::Replay {
            status: status as u16,
            body,
        },
        Some(_) => Claim::InProgress,
    })
}

pub async fn finish(
    pool: &PgPool,
    project_id: Uuid,
    key: &str,
    status: u16,
    body: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE project_id = $1 AND key = $2",
    )
    .bind(project_id)
    .bind(key)
    .bind(status as i32)
    .bind(body)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets a claim whose request failed for a reason worth retrying (a 5xx).
pub async fn abandon(pool: &PgPool, project_id: Uuid, key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE project_id = $1 AND key = $2 AND response_status IS NULL")
        .bind(project_id)
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn purge(pool: &PgPool, hours: i64, batch: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE ctid IN (
             SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1::int) LIMIT $2)",
    )
    .bind(hours)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
