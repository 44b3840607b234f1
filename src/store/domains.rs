//! Sending domains and their DKIM keys (migration 0027). Private keys arrive here sealed
//! (`secrets::SecretBox`); this file never sees them in clear.

use std::{collections::HashMap, time::Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, types::Json};
use uuid::Uuid;

const DOMAIN_COLUMNS: &str = "id, project_id, name, status, dmarc_rua, return_path, checks, \
     pending_since, failing_since, verified_at, last_checked_at, next_check_at, created_at, \
     updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DomainRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub status: String,
    pub dmarc_rua: Option<String>,
    /// The label of the return-path subdomain (`bounces` for bounces.<name>).
    pub return_path: String,
    /// What the last check found, by record kind.
    pub checks: Json<Value>,
    pub pending_since: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub next_check_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub id: Uuid,
    pub domain_id: Uuid,
    pub selector: String,
    pub algorithm: String,
    pub public_key: String,
    /// Sealed; opened only to sign.
    pub private_key: String,
    /// `active`, `pending` or `retired`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// A key to store: its id is the sealing context, so it is chosen before sealing.
pub struct NewKey {
    pub id: Uuid,
    /// `rsa-sha256` or `ed25519-sha256`.
    pub algorithm: &'static str,
    pub selector: String,
    pub public_key: String,
    pub sealed_private_key: String,
}

const KEY_COLUMNS: &str = "id, domain_id, selector, algorithm, public_key, private_key, state, \
     created_at, activated_at, retired_at";

/// A domain to insert.
pub struct NewDomain<'a> {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: &'a str,
    pub dmarc_rua: Option<&'a str>,
    pub return_path: &'a str,
}

/// Inserts a domain with its first (active) keys, one per algorithm; `None` when the project
/// has it already.
pub async fn insert(
    pool: &PgPool,
    domain: &NewDomain<'_>,
    keys: &[NewKey],
) -> sqlx::Result<Option<DomainRow>> {
    let mut tx = pool.begin().await?;
    let row: Option<DomainRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO domains (id, project_id, name, dmarc_rua, return_path) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (project_id, name) DO NOTHING RETURNING {DOMAIN_COLUMNS}"
    )))
    .bind(domain.id)
    .bind(domain.project_id)
    .bind(domain.name)
    .bind(domain.dmarc_rua)
    .bind(domain.return_path)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    for key in keys {
        insert_key(&mut tx, domain.id, key, "active").await?;
    }
    tx.commit().await?;
    Ok(Some(row))
}

async fn insert_key(
    tx: &mut sqlx::PgConnection,
    domain_id: Uuid,
    key: &NewKey,
    state: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO domain_keys (id, domain_id, selector, algorithm, public_key, private_key, state, activated_at)
         VALUES ($1, $2, $3, $7, $4, $5, $6, CASE WHEN $6 = 'active' THEN now() END)",
    )
    .bind(key.id)
    .bind(domain_id)
    .bind(&key.selector)
    .bind(&key.public_key)
    .bind(&key.sealed_private_key)
    .bind(state)
    .bind(key.algorithm)
    .execute(tx)
    .await?;
    Ok(())
}

/// Adds pending keys (a rotation, one per algorithm the domain signs with); `false` when the
/// domain has one pending already.
pub async fn insert_pending_keys(
    pool: &PgPool,
    domain_id: Uuid,
    keys: &[NewKey],
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let busy: Option<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM domain_keys WHERE domain_id = $1 AND state = 'pending' FOR UPDATE",
    )
    .bind(domain_id)
    .fetch_optional(&mut *tx)
    .await?;
    if busy.is_some() {
        return Ok(false);
    }
    for key in keys {
        insert_key(&mut tx, domain_id, key, "pending").await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The pending keys become the active ones; the active key of each of their algorithms is
/// retired (its record may go).
pub async fn activate_pending(pool: &PgPool, domain_id: Uuid) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let retired = sqlx::query(
        "UPDATE domain_keys a SET state = 'retired', retired_at = now()
         WHERE a.domain_id = $1 AND a.state = 'active'
           AND EXISTS (SELECT 1 FROM domain_keys p
                       WHERE p.domain_id = $1 AND p.state = 'pending' AND p.algorithm = a.algorithm)",
    )
    .bind(domain_id)
    .execute(&mut *tx)
    .await?;
    if retired.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE domain_keys SET state = 'active', activated_at = now()
         WHERE domain_id = $1 AND state = 'pending'",
    )
    .bind(domain_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE domains SET updated_at = now() WHERE id = $1")
        .bind(domain_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Newest first, older than the cursor `(created_at, id)` when given.
pub async fn list(
    pool: &PgPool,
    project_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<DomainRow>> {
    let (at, id) = before.unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DOMAIN_COLUMNS} FROM domains
         WHERE project_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC LIMIT $4"
    )))
    .bind(project_id)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn find(pool: &PgPool, project_id: Uuid, id: Uuid) -> sqlx::Result<Option<DomainRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DOMAIN_COLUMNS} FROM domains WHERE project_id = $1 AND id = $2"
    )))
    .bind(project_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Every key of the domains given, oldest first.
pub async fn keys(pool: &PgPool, domain_ids: &[Uuid]) -> sqlx::Result<Vec<KeyRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM domain_keys WHERE domain_id = ANY($1) ORDER BY created_at, id"
    )))
    .bind(domain_ids)
    .fetch_all(pool)
    .await
}

/// Changes the DMARC report address (`None`: unchanged; `Some(None)`: the default).
pub async fn update(
    pool: &PgPool,
    project_id: Uuid,
    id: Uuid,
    dmarc_rua: Option<Option<&str>>,
) -> sqlx::Result<Option<DomainRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE domains SET dmarc_rua = CASE WHEN $3 THEN $4 ELSE dmarc_rua END, updated_at = now()
         WHERE project_id = $1 AND id = $2 RETURNING {DOMAIN_COLUMNS}"
    )))
    .bind(project_id)
    .bind(id)
    .bind(dmarc_rua.is_some())
    .bind(dmarc_rua.flatten())
    .fetch_optional(pool)
    .await
}

pub async fn delete(pool: &PgPool, project_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM domains WHERE project_id = $1 AND id = $2")
        .bind(project_id)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// What one check concluded.
pub struct CheckOutcome<'a> {
    pub status: &'a str,
    pub checks: &'a Value,
    pub pending_since: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub next_check_at: Option<DateTime<Utc>>,
}

/// Saves a check's outcome, and queues `event` (when given) to the project's endpoints in the
/// same transaction.
pub async fn save_check(
    pool: &PgPool,
    domain: &DomainRow,
    outcome: &CheckOutcome<'_>,
    event: Option<(&str, &Value)>,
) -> sqlx::Result<DomainRow> {
    let mut tx = pool.begin().await?;
    let row: DomainRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE domains SET status = $2, checks = $3, pending_since = $4, failing_since = $5,
                verified_at = $6, next_check_at = $7, last_checked_at = now(), updated_at = now()
         WHERE id = $1 RETURNING {DOMAIN_COLUMNS}"
    )))
    .bind(domain.id)
    .bind(outcome.status)
    .bind(Json(outcome.checks))
    .bind(outcome.pending_since)
    .bind(outcome.failing_since)
    .bind(outcome.verified_at)
    .bind(outcome.next_check_at)
    .fetch_one(&mut *tx)
    .await?;
    if let Some((event_type, data)) = event {
        enqueue_event(&mut tx, domain.project_id, event_type, data).await?;
    }
    tx.commit().await?;
    Ok(row)
}

/// A `domain.*` event is about no message, so it is enqueued here rather than by the events
/// trigger: one delivery per enabled endpoint of the project that wants it.
async fn enqueue_event(
    tx: &mut sqlx::PgConnection,
    project_id: Uuid,
    event_type: &str,
    data: &Value,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"
        INSERT INTO webhook_deliveries (endpoint_id, event_type, payload)
        SELECT w.id, $2,
               jsonb_build_object('type', $2::text,
                                  'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                                  'data', $3::jsonb)
        FROM webhook_endpoints w
        WHERE w.project_id = $1 AND w.enabled
          AND (w.event_types IS NULL OR $2 = ANY (w.event_types))
        "#,
    )
    .bind(project_id)
    .bind(event_type)
    .bind(data)
    .execute(tx)
    .await?;
    Ok(())
}

/// Brings the domain's next check forward to `at` (a domain not checked in the background,
/// not started or failed, stays so).
pub async fn check_by(pool: &PgPool, id: Uuid, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("UPDATE domains SET next_check_at = least(next_check_at, $2) WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}

/// Claims up to `limit` domains whose check is due, pushing their next check `lease_secs`
/// ahead so another instance does not take them meanwhile; the check then sets it.
pub async fn claim_due(pool: &PgPool, limit: i64, lease_secs: i64) -> sqlx::Result<Vec<DomainRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE domains SET next_check_at = now() + make_interval(secs => $2)
         WHERE id IN (SELECT id FROM domains WHERE next_check_at <= now()
                      ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING {DOMAIN_COLUMNS}"
    )))
    .bind(limit)
    .bind(lease_secs as f64)
    .fetch_all(pool)
    .await
}

/// The active keys of every domain mail may be signed for (verified, or verified and now
/// missing a record within its grace period).
pub async fn signing_keys(pool: &PgPool) -> sqlx::Result<Vec<(Uuid, String, KeyRow)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        project_id: Uuid,
        name: String,
        #[sqlx(flatten)]
        key: KeyRow,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT d.project_id, d.name, k.id, k.domain_id, k.selector, k.algorithm, k.public_key,
                k.private_key, k.state, k.created_at, k.activated_at, k.retired_at
         FROM domains d JOIN domain_keys k ON k.domain_id = d.id AND k.state = 'active'
         WHERE d.status IN ('verified', 'temporary_failure')",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.project_id, r.name, r.key))
        .collect())
}

/// A domain whose return path is in use: mail from `name` (or a subdomain) goes out with
/// `b-<token>@<return_path>.<name>` as its envelope sender.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReturnPathRow {
    pub project_id: Uuid,
    pub name: String,
    pub return_path: String,
}

/// The domains mail may be sent from whose return-path MX record the last check found as
/// asked (`checks` is keyed by `<record> <name>`, see `service::domains::records`).
pub async fn return_paths(pool: &PgPool) -> sqlx::Result<Vec<ReturnPathRow>> {
    sqlx::query_as(
        "SELECT project_id, name, return_path FROM domains
         WHERE status IN ('verified', 'temporary_failure')
           AND checks -> ('RETURN_PATH ' || return_path || '.' || name) ->> 'status' = 'verified'",
    )
    .fetch_all(pool)
    .await
}

/// Whether `domain` is the return path of one of the project's domains (`None`: of any).
pub async fn is_return_path(
    pool: &PgPool,
    project_id: Option<Uuid>,
    domain: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM domains
                        WHERE return_path || '.' || name = $1
                          AND ($2::uuid IS NULL OR project_id = $2))",
    )
    .bind(domain)
    .bind(project_id)
    .fetch_one(pool)
    .await
}

/// The names of a project's domains mail may be sent from (see `signing_keys`).
pub async fn verified_names(pool: &PgPool, project_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT name FROM domains WHERE project_id = $1 AND status IN ('verified', 'temporary_failure')",
    )
    .bind(project_id)
    .fetch_all(pool)
    .await
}

/// The sealed private key of every key still in use, by key id (for `doctor`).
pub async fn sealed_keys(pool: &PgPool) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as("SELECT id, private_key FROM domain_keys WHERE state <> 'retired'")
        .fetch_all(pool)
        .await
}

/// The names of each project's verified domains as the accept path reads them: at most every
/// `CACHE_TTL` per process, forgotten here as soon as a check here changes them.
#[derive(Clone, Default)]
pub struct VerifiedDomains {
    entries: std::sync::Arc<std::sync::Mutex<HashMap<Uuid, Cached>>>,
}

/// When a project's names were read, and the names.
type Cached = (Instant, Vec<String>);

/// How stale another process's view of a domain's status may be.
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl VerifiedDomains {
    pub async fn get(&self, pool: &PgPool, project: Uuid) -> sqlx::Result<Vec<String>> {
        let cached = self
            .entries
            .lock()
            .expect("not poisoned")
            .get(&project)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, names)| names.clone());
        if let Some(names) = cached {
            return Ok(names);
        }
        let names = verified_names(pool, project).await?;
        self.entries
            .lock()
            .expect("not poisoned")
            .insert(project, (Instant::now(), names.clone()));
        Ok(names)
    }

    pub fn forget(&self, project: Uuid) {
        self.entries.lock().expect("not poisoned").remove(&project);
    }
}

/// Every domain of every project, for `mailgate doctor` (at most `limit`).
pub async fn all(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<DomainRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DOMAIN_COLUMNS} FROM domains ORDER BY project_id, name LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(pool)
    .await
}
