//! SQL access, one file per table group. Nothing outside this folder and `queue/` writes SQL.

pub mod api_keys;
pub mod console_sessions;
pub mod group_commit;
pub mod idempotency;
pub mod inbound;
pub mod messages;
pub mod overview;
pub mod projects;
pub mod server_keys;
pub mod suppressions;
pub mod templates;
pub mod tracking;
pub mod webhooks;

use std::time::Duration;

use anyhow::Context;
use sqlx::{PgPool, postgres::PgPoolOptions};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        // Short acquire timeout: during an outage requests fail fast with 503 instead of piling up.
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .with_context(|| {
            format!(
                "could not connect to Postgres at {}",
                crate::config::redact_url(url)
            )
        })
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("failed to apply database migrations")
}

/// Whether `err` means the database is unreachable or going away (an outage, answered 503 so
/// clients retry) rather than a refused statement: no connection, a dead socket, or Postgres
/// saying it is shutting down, restarting or not yet accepting connections (SQLSTATE classes
/// 08 and 57, e.g. `57P01` when `pg_ctl stop -m fast` ends a busy connection).
pub fn is_outage(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57")),
        _ => false,
    }
}
