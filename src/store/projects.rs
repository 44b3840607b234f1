//! Projects: the tenant boundary.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    /// The relay pool used when a send names none.
    pub default_relay: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Returns the project with this name, creating it if needed (idempotent under races).
pub async fn ensure(pool: &PgPool, name: &str) -> sqlx::Result<(Project, bool)> {
    let created: Option<Project> = sqlx::query_as(
        "INSERT INTO projects (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
         RETURNING id, name, default_relay, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .fetch_optional(pool)
    .await?;
    match created {
        Some(p) => Ok((p, true)),
        None => Ok((
            find_by_name(pool, name)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?,
            false,
        )),
    }
}

pub async fn find_by_name(pool: &PgPool, name: &str) -> sqlx::Result<Option<Project>> {
    sqlx::query_as("SELECT id, name, default_relay, created_at FROM projects WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
}

pub async fn find(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Project>> {
    sqlx::query_as("SELECT id, name, default_relay, created_at FROM projects WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Project>> {
    sqlx::query_as("SELECT id, name, default_relay, created_at FROM projects ORDER BY name")
        .fetch_all(pool)
        .await
}

/// Sets or clears the project's default relay pool.
pub async fn set_default_relay(
    pool: &PgPool,
    name: &str,
    relay: Option<&str>,
) -> sqlx::Result<Option<Project>> {
    sqlx::query_as(
        "UPDATE projects SET default_relay = $2 WHERE name = $1 RETURNING id, name, default_relay, created_at",
    )
    .bind(name)
    .bind(relay)
    .fetch_optional(pool)
    .await
}
