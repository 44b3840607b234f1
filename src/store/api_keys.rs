//! API key rows. Lookups go by hash; the key in clear never reaches this module.

use chrono::{DateTime, Utc};
use serde::Serialize;
// Only the constant COLUMNS is formatted into these statements; values are bound.
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use crate::domain::{ApiKeySecret, Scope, api_key::KeyLimits};

/// What a request learns about the key that authenticated it.
#[derive(Debug, Clone)]
pub struct AuthenticatedKey {
    pub id: Uuid,
    pub project_id: Uuid,
    pub scopes: Vec<Scope>,
    pub test_mode: bool,
    /// Its own send limits; unset fields take the configured defaults.
    pub limits: KeyLimits,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: Option<String>,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub test_mode: bool,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Own send limits; null means the configured default.
    pub rate_per_sec: Option<f64>,
    pub burst: Option<i32>,
    pub daily_quota: Option<i64>,
}

const COLUMNS: &str = "id, project_id, name, prefix, scopes, test_mode, created_at, revoked_at, \
                       rate_per_sec, burst, daily_quota";

pub async fn create(
    pool: &PgPool,
    project_id: Uuid,
    name: Option<&str>,
    scopes: &[Scope],
    secret: &ApiKeySecret,
) -> sqlx::Result<ApiKeyInfo> {
    create_with_limits(
        pool,
        project_id,
        name,
        scopes,
        secret,
        &KeyLimits::default(),
    )
    .await
}

pub async fn create_with_limits(
    pool: &PgPool,
    project_id: Uuid,
    name: Option<&str>,
    scopes: &[Scope],
    secret: &ApiKeySecret,
    limits: &KeyLimits,
) -> sqlx::Result<ApiKeyInfo> {
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let (rate, burst, quota) = limit_columns(limits);
    sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO api_keys (id, project_id, name, prefix, key_hash, scopes, test_mode,
                               rate_per_sec, burst, daily_quota)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(project_id)
    .bind(name)
    .bind(secret.display_prefix())
    .bind(secret.hash())
    .bind(scopes)
    .bind(secret.is_test())
    .bind(rate)
    .bind(burst)
    .bind(quota)
    .fetch_one(pool)
    .await
}

/// The domain checks bound every value far inside the column types.
fn limit_columns(limits: &KeyLimits) -> (Option<f64>, Option<i32>, Option<i64>) {
    (
        limits.rate_per_sec,
        limits.burst.map(|b| i32::try_from(b).unwrap_or(i32::MAX)),
        limits
            .daily_quota
            .map(|q| i64::try_from(q).unwrap_or(i64::MAX)),
    )
}

type KeyRow = (
    Uuid,
    Uuid,
    Vec<String>,
    bool,
    Option<f64>,
    Option<i32>,
    Option<i64>,
);

const ACTIVE_KEY: &str =
    "SELECT id, project_id, scopes, test_mode, rate_per_sec, burst, daily_quota
                          FROM api_keys WHERE revoked_at IS NULL";

pub async fn find_active(
    pool: &PgPool,
    secret: &ApiKeySecret,
) -> sqlx::Result<Option<AuthenticatedKey>> {
    let row: Option<KeyRow> =
        sqlx::query_as(AssertSqlSafe(format!("{ACTIVE_KEY} AND key_hash = $1")))
            .bind(secret.hash())
            .fetch_optional(pool)
            .await?;
    Ok(row.map(authenticated))
}

/// The key with this id while it is not revoked (a console session signed in with it).
pub async fn find_active_by_id(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<AuthenticatedKey>> {
    let row: Option<KeyRow> = sqlx::query_as(AssertSqlSafe(format!("{ACTIVE_KEY} AND id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(authenticated))
}

/// The key with this id, revoked or not (of `project_id` only, when given): what it holds,
/// for a key that would change it.
pub async fn find(
    pool: &PgPool,
    id: Uuid,
    project_id: Option<Uuid>,
) -> sqlx::Result<Option<AuthenticatedKey>> {
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT id, project_id, scopes, test_mode, rate_per_sec, burst, daily_quota
         FROM api_keys WHERE id = $1 AND ($2::uuid IS NULL OR project_id = $2)",
    )
    .bind(id)
    .bind(project_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(authenticated))
}

fn authenticated(
    (id, project_id, scopes, test_mode, rate, burst, quota): KeyRow,
) -> AuthenticatedKey {
    AuthenticatedKey {
        id,
        project_id,
        // Unknown scope names (from a newer version) are ignored rather than fatal.
        scopes: scopes.iter().filter_map(|s| s.parse().ok()).collect(),
        test_mode,
        // The columns' CHECKs keep these positive.
        limits: KeyLimits {
            rate_per_sec: rate,
            burst: burst.and_then(|b| u32::try_from(b).ok()),
            daily_quota: quota.and_then(|q| u64::try_from(q).ok()),
        },
    }
}

/// Changes to a key's limits: `Some(None)` returns a setting to the default, `None` keeps it.
#[derive(Debug, Clone, Default)]
pub struct LimitsChange {
    pub rate_per_sec: Option<Option<f64>>,
    pub burst: Option<Option<u32>>,
    pub daily_quota: Option<Option<u64>>,
}

/// Applies `change`; `project_id` confines it to one tenant when given. A revoked key is
/// gone for good: `None`, as for one that never existed.
pub async fn update_limits(
    pool: &PgPool,
    id: Uuid,
    project_id: Option<Uuid>,
    change: &LimitsChange,
) -> sqlx::Result<Option<ApiKeyInfo>> {
    let (rate, burst, quota) = limit_columns(&KeyLimits {
        rate_per_sec: change.rate_per_sec.flatten(),
        burst: change.burst.flatten(),
        daily_quota: change.daily_quota.flatten(),
    });
    sqlx::query_as(AssertSqlSafe(format!(
        "UPDATE api_keys SET
             rate_per_sec = CASE WHEN $3 THEN $4 ELSE rate_per_sec END,
             burst = CASE WHEN $5 THEN $6 ELSE burst END,
             daily_quota = CASE WHEN $7 THEN $8 ELSE daily_quota END
         WHERE id = $1 AND ($2::uuid IS NULL OR project_id = $2) AND revoked_at IS NULL
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(project_id)
    .bind(change.rate_per_sec.is_some())
    .bind(rate)
    .bind(change.burst.is_some())
    .bind(burst)
    .bind(change.daily_quota.is_some())
    .bind(quota)
    .fetch_optional(pool)
    .await
}

pub async fn list(pool: &PgPool, project_id: Option<Uuid>) -> sqlx::Result<Vec<ApiKeyInfo>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_keys WHERE ($1::uuid IS NULL OR project_id = $1) ORDER BY created_at"
    )))
    .bind(project_id)
    .fetch_all(pool)
    .await
}

/// Revokes a key; `project_id` confines the change to one tenant when given.
pub async fn revoke(
    pool: &PgPool,
    id: Uuid,
    project_id: Option<Uuid>,
) -> sqlx::Result<Option<ApiKeyInfo>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 AND ($2::uuid IS NULL OR project_id = $2) AND revoked_at IS NULL
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(project_id)
    .fetch_optional(pool)
    .await
}
