//! The MTA-STS policy cache (`mta_sts_policies`): one policy per recipient domain, shared by
//! every instance, so a policy is fetched once and survives restarts and failed refreshes.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A cached policy as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CachedPolicy {
    pub domain: String,
    pub policy_id: String,
    pub mode: String,
    pub mx: Vec<String>,
    pub max_age: i32,
    pub fetched_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub refresh_error: Option<String>,
}

/// The domain's policy while it is still within its `max_age`.
pub async fn current(pool: &PgPool, domain: &str) -> sqlx::Result<Option<CachedPolicy>> {
    sqlx::query_as(
        "SELECT domain, policy_id, mode, mx, max_age, fetched_at, expires_at, refresh_error
         FROM mta_sts_policies WHERE domain = $1 AND expires_at > now()",
    )
    .bind(domain)
    .fetch_optional(pool)
    .await
}

/// Stores a freshly fetched policy in place of the domain's previous one.
pub async fn store(
    pool: &PgPool,
    domain: &str,
    policy_id: &str,
    mode: &str,
    mx: &[String],
    max_age: u32,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mta_sts_policies (domain, policy_id, mode, mx, max_age, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + $5 * interval '1 second')
         ON CONFLICT (domain) DO UPDATE SET policy_id = $2, mode = $3, mx = $4, max_age = $5,
             fetched_at = now(), expires_at = now() + $5 * interval '1 second',
             refresh_error = NULL, refresh_failed_at = NULL",
    )
    .bind(domain)
    .bind(policy_id)
    .bind(mode)
    .bind(mx)
    .bind(max_age as i32)
    .execute(pool)
    .await?;
    Ok(())
}

/// Notes a refresh that failed while the cached policy stays in use.
pub async fn refresh_failed(pool: &PgPool, domain: &str, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mta_sts_policies SET refresh_error = $2, refresh_failed_at = now()
         WHERE domain = $1",
    )
    .bind(domain)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}
