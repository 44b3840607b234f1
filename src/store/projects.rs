//! Projects: the tenant boundary, and the settings each project has of its own.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

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
    /// The domain of this project's VERP return paths, over the server's `bounce.domain`.
    pub bounce_domain: Option<String>,
    /// Mail to any address at these domains is delivered to the project's webhooks as
    /// `email.received`.
    pub inbound_domains: Vec<String>,
    /// Whether sends track opens and clicks when they do not say (`track`).
    pub track_opens: bool,
    pub track_clicks: bool,
    /// Whether sends with one recipient that do not say get one-click unsubscribe headers
    /// (`unsubscribe`).
    pub unsubscribe_default: bool,
    /// Content scanning policy over the server's `scan.spam`, `scan.virus` and
    /// `scan.on_error` (`null`: the server's).
    pub scan_spam: Option<String>,
    pub scan_virus: Option<String>,
    pub scan_on_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, name, default_relay, bounce_domain, inbound_domains, track_opens, track_clicks,
     unsubscribe_default, scan_spam, scan_virus, scan_on_error, created_at";

/// Returns the project with this name, creating it if needed (idempotent under races).
pub async fn ensure(pool: &PgPool, name: &str) -> sqlx::Result<(Project, bool)> {
    let created: Option<Project> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO projects (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
         RETURNING {COLUMNS}"
    )))
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
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM projects WHERE name = $1"
    )))
    .bind(name)
    .fetch_optional(pool)
    .await
}

pub async fn find(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Project>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM projects WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Project>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM projects ORDER BY name"
    )))
    .fetch_all(pool)
    .await
}

/// Sets or clears the project's default relay pool.
pub async fn set_default_relay(
    pool: &PgPool,
    name: &str,
    relay: Option<&str>,
) -> sqlx::Result<Option<Project>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE projects SET default_relay = $2 WHERE name = $1 RETURNING {COLUMNS}"
    )))
    .bind(name)
    .bind(relay)
    .fetch_optional(pool)
    .await
}

/// A change to a project's own settings; `None` leaves a setting as it is.
#[derive(Debug, Default, Clone)]
pub struct SettingsChange {
    pub default_relay: Option<Option<String>>,
    pub bounce_domain: Option<Option<String>>,
    /// Lower case, each once.
    pub inbound_domains: Option<Vec<String>>,
    pub track_opens: Option<bool>,
    pub track_clicks: Option<bool>,
    pub unsubscribe_default: Option<bool>,
    pub scan_spam: Option<Option<String>>,
    pub scan_virus: Option<Option<String>>,
    pub scan_on_error: Option<Option<String>>,
}

pub async fn update(
    pool: &PgPool,
    name: &str,
    change: &SettingsChange,
) -> sqlx::Result<Option<Project>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE projects SET
             default_relay = CASE WHEN $2 THEN $3 ELSE default_relay END,
             bounce_domain = CASE WHEN $4 THEN $5 ELSE bounce_domain END,
             inbound_domains = coalesce($6, inbound_domains),
             track_opens = coalesce($7, track_opens),
             track_clicks = coalesce($8, track_clicks),
             scan_spam = CASE WHEN $9 THEN $10 ELSE scan_spam END,
             scan_virus = CASE WHEN $11 THEN $12 ELSE scan_virus END,
             scan_on_error = CASE WHEN $13 THEN $14 ELSE scan_on_error END,
             unsubscribe_default = coalesce($15, unsubscribe_default)
         WHERE name = $1 RETURNING {COLUMNS}"
    )))
    .bind(name)
    .bind(change.default_relay.is_some())
    .bind(change.default_relay.clone().flatten())
    .bind(change.bounce_domain.is_some())
    .bind(change.bounce_domain.clone().flatten())
    .bind(&change.inbound_domains)
    .bind(change.track_opens)
    .bind(change.track_clicks)
    .bind(change.scan_spam.is_some())
    .bind(change.scan_spam.clone().flatten())
    .bind(change.scan_virus.is_some())
    .bind(change.scan_virus.clone().flatten())
    .bind(change.scan_on_error.is_some())
    .bind(change.scan_on_error.clone().flatten())
    .bind(change.unsubscribe_default)
    .fetch_optional(pool)
    .await
}

/// The project whose inbound domains include `domain` (lower case), if any.
pub async fn by_inbound_domain(pool: &PgPool, domain: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM projects WHERE inbound_domains @> ARRAY[$1::text] LIMIT 1")
        .bind(domain)
        .fetch_optional(pool)
        .await
}

/// Whether some project uses `domain` (lower case) as its bounce domain.
pub async fn is_bounce_domain(pool: &PgPool, domain: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE lower(bounce_domain) = $1)")
        .bind(domain)
        .fetch_one(pool)
        .await
}

/// Projects as the accept path reads them (tracking defaults, scanning policy): each read at
/// most every `CACHE_TTL` per process, and forgotten here as soon as it is changed here.
#[derive(Clone, Default)]
pub struct ProjectCache {
    entries: std::sync::Arc<std::sync::Mutex<HashMap<Uuid, (Instant, Project)>>>,
}

/// How stale another process's view of a changed project may be.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

impl ProjectCache {
    pub async fn get(&self, pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Project>> {
        let cached = self
            .entries
            .lock()
            .expect("not poisoned")
            .get(&id)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, p)| p.clone());
        if cached.is_some() {
            return Ok(cached);
        }
        let project = find(pool, id).await?;
        if let Some(p) = &project {
            self.entries
                .lock()
                .expect("not poisoned")
                .insert(id, (Instant::now(), p.clone()));
        }
        Ok(project)
    }

    pub fn forget(&self, id: Uuid) {
        self.entries.lock().expect("not poisoned").remove(&id);
    }
}
