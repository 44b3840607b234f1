//! API key rows. Lookups go by hash; the key in clear never reaches this module.

use chrono::{DateTime, Utc};
use serde::Serialize;
// Only the constant COLUMNS is formatted into these statements; values are bound.
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use crate::domain::{ApiKeySecret, Scope};

/// What a request learns about the key that authenticated it.
#[derive(Debug, Clone)]
pub struct AuthenticatedKey {
    pub id: Uuid,
    pub project_id: Uuid,
    pub scopes: Vec<Scope>,
    pub test_mode: bool,
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
}

const COLUMNS: &str = "id, project_id, name, prefix, scopes, test_mode, created_at, revoked_at";

pub async fn create(
    pool: &PgPool,
    project_id: Uuid,
    name: Option<&str>,
    scopes: &[Scope],
    secret: &ApiKeySecret,
) -> sqlx::Result<ApiKeyInfo> {
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO api_keys (id, project_id, name, prefix, key_hash, scopes, test_mode)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(project_id)
    .bind(name)
    .bind(secret.display_prefix())
    .bind(secret.hash())
    .bind(scopes)
    .bind(secret.is_test())
    .fetch_one(pool)
    .await
}

pub async fn find_active(
    pool: &PgPool,
    secret: &ApiKeySecret,
) -> sqlx::Result<Option<AuthenticatedKey>> {
    let row: Option<(Uuid, Uuid, Vec<String>, bool)> = sqlx::query_as(
        "SELECT id, project_id, scopes, test_mode FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(secret.hash())
    .fetch_optional(pool)
    .await?;
    Ok(
        row.map(|(id, project_id, scopes, test_mode)| AuthenticatedKey {
            id,
            project_id,
            // Unknown scope names (from a newer version) are ignored rather than fatal.
            scopes: scopes.iter().filter_map(|s| s.parse().ok()).collect(),
            test_mode,
        }),
    )
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
         WHERE id = $1 AND ($2::uuid IS NULL OR project_id = $2) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(project_id)
    .fetch_optional(pool)
    .await
}
