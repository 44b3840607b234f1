//! Recipients waiting for delivery, by recipient domain: what the operator's destinations
//! view (`GET /v1/destinations`) starts from.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Waiting recipients of one domain, among those scanned.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WaitingDomain {
    pub domain: String,
    pub queued: i64,
    pub deferred: i64,
    /// The newest reply recorded on one of them (a deferral's).
    pub last_reply: Option<String>,
    pub last_reply_at: Option<DateTime<Utc>>,
    /// When the soonest of them is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The domains with the most recipients waiting (`queued` or `deferred`), at most `domains`
/// of them, counted over the `scan` recipients due soonest; and how many were scanned (when
/// it is `scan`, there may be more). Read through the `queue_due` partial index (0037), which
/// holds only waiting rows, never the delivered history; sequential scans are off for the
/// statement so its cost never depends on the table's size.
pub async fn waiting(
    pool: &PgPool,
    scan: i64,
    domains: i64,
) -> sqlx::Result<(Vec<WaitingDomain>, i64)> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await?;
    let scanned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM queue
         WHERE status IN ('queued', 'deferred') ORDER BY next_attempt_at LIMIT $1) capped",
    )
    .bind(scan)
    .fetch_one(&mut *tx)
    .await?;
    let rows = sqlx::query_as(
        r#"
        WITH waiting AS (
            SELECT lower(substring(r.email FROM '@([^@]*)$')) AS domain, q.status,
                   r.smtp_response, r.updated_at, q.next_attempt_at
            FROM (SELECT message_id, id, status, next_attempt_at FROM queue
                  WHERE status IN ('queued', 'deferred')
                  ORDER BY next_attempt_at
                  LIMIT $1) q
            -- The whole primary key: one probe in the message's day partition.
            JOIN recipients r ON r.message_id = q.message_id AND r.id = q.id
        )
        SELECT coalesce(domain, '') AS domain,
               count(*) FILTER (WHERE status = 'queued') AS queued,
               count(*) FILTER (WHERE status = 'deferred') AS deferred,
               (array_agg(smtp_response ORDER BY updated_at DESC)
                    FILTER (WHERE smtp_response IS NOT NULL))[1] AS last_reply,
               max(updated_at) FILTER (WHERE smtp_response IS NOT NULL) AS last_reply_at,
               min(next_attempt_at) AS next_attempt_at
        FROM waiting
        GROUP BY domain
        ORDER BY count(*) DESC, domain
        LIMIT $2
        "#,
    )
    .bind(scan)
    .bind(domains)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((rows, scanned))
}
