//! Accepted messages, their recipients and their event timeline.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A message ready to commit: validated, rendered, with its id assigned. Owned, so it can
/// wait in the group-commit queue (`store::group_commit`) beside other senders' messages.
pub struct AcceptedMessage {
    pub id: Uuid,
    pub by: Submitter,
    pub from: String,
    pub subject: String,
    pub message_id: String,
    pub mime: Vec<u8>,
    pub tags: Vec<String>,
    pub metadata: serde_json::Value,
    pub relay: Option<String>,
    /// Scheduled delivery time; `None` sends now.
    pub send_at: Option<DateTime<Utc>>,
    /// (address, kind) in request order.
    pub recipients: Vec<(String, &'static str)>,
    /// Why the content policy holds it (its recipients start `held`); `None` sends it.
    pub hold: Option<String>,
    /// What the content scanners said, kept with the message.
    pub scan: Option<serde_json::Value>,
}

/// Who submitted a message. Each message carries its own, so one statement may commit
/// messages of several projects.
#[derive(Debug, Clone, Copy)]
pub struct Submitter {
    pub project_id: Uuid,
    pub api_key_id: Option<Uuid>,
    /// Processed and reported, never relayed.
    pub sandbox: bool,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RecipientState {
    #[serde(skip)]
    pub message_id: Uuid,
    pub email: String,
    pub status: String,
}

/// Commits messages, their recipients (suppressed or scheduled ones marked so) and the first
/// events in one statement: one round trip for a whole batch, and nothing is acknowledged
/// before it is durable. Returns the recipients in input order.
pub async fn insert(
    conn: &mut PgConnection,
    batch: &[AcceptedMessage],
) -> sqlx::Result<Vec<RecipientState>> {
    let mut projects = Vec::with_capacity(batch.len());
    let mut keys = Vec::with_capacity(batch.len());
    let mut sandboxes = Vec::with_capacity(batch.len());
    let mut ids = Vec::with_capacity(batch.len());
    let mut froms = Vec::with_capacity(batch.len());
    let mut subjects = Vec::with_capacity(batch.len());
    let mut message_ids = Vec::with_capacity(batch.len());
    let mut mimes = Vec::with_capacity(batch.len());
    let mut tags = Vec::with_capacity(batch.len());
    let mut metadata = Vec::with_capacity(batch.len());
    let mut relays = Vec::with_capacity(batch.len());
    let mut send_ats = Vec::with_capacity(batch.len());
    let mut holds = Vec::with_capacity(batch.len());
    let mut scans = Vec::with_capacity(batch.len());
    let (mut r_msg, mut r_email, mut r_kind) = (Vec::new(), Vec::new(), Vec::new());
    for (i, m) in batch.iter().enumerate() {
        projects.push(m.by.project_id);
        keys.push(m.by.api_key_id);
        sandboxes.push(m.by.sandbox);
        ids.push(m.id);
        froms.push(m.from.as_str());
        subjects.push(m.subject.as_str());
        message_ids.push(m.message_id.as_str());
        mimes.push(m.mime.as_slice());
        // Postgres arrays must be rectangular, so per-message tag lists travel as JSON.
        tags.push(serde_json::json!(m.tags));
        metadata.push(m.metadata.clone());
        relays.push(m.relay.as_deref());
        send_ats.push(m.send_at);
        holds.push(m.hold.as_deref());
        scans.push(m.scan.clone());
        for (email, kind) in &m.recipients {
            r_msg.push(i as i32 + 1);
            r_email.push(email.as_str());
            r_kind.push(*kind);
        }
    }
    sqlx::query_as(
        r#"
        WITH m_in AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bool[],
                                 $4::uuid[], $5::text[], $6::text[], $7::text[], $8::bytea[],
                                 $9::jsonb[], $10::jsonb[], $11::text[], $12::timestamptz[],
                                 $16::text[], $17::jsonb[])
                WITH ORDINALITY AS t(project_id, api_key_id, sandbox, id, from_addr, subject,
                                     message_id, mime, tags, metadata, relay, send_at, hold, scan,
                                     ord)
        ),
        r_in AS (
            SELECT r.email, r.kind, r.ord, m.id AS message_id, m.ord AS msg_ord, m.hold,
                   CASE
                       WHEN EXISTS (SELECT 1 FROM suppressions s
                                    WHERE s.project_id = m.project_id AND s.email = lower(r.email)) THEN 'suppressed'
                       WHEN m.hold IS NOT NULL THEN 'held'
                       WHEN m.send_at > now() THEN 'scheduled'
                       ELSE 'queued'
                   END AS status,
                   greatest(coalesce(m.send_at, now()), now()) AS due
            FROM unnest($13::int[], $14::text[], $15::text[]) WITH ORDINALITY AS r(msg, email, kind, ord)
            JOIN m_in m ON m.ord = r.msg
        ),
        msg AS (
            INSERT INTO messages (id, project_id, api_key_id, status, from_addr, subject, message_id,
                                  mime, tags, metadata, relay, sandbox, send_at, scan)
            SELECT m.id, m.project_id, m.api_key_id, s.status, m.from_addr, m.subject, m.message_id, m.mime,
                   ARRAY(SELECT jsonb_array_elements_text(m.tags)), m.metadata, m.relay, m.sandbox, m.send_at,
                   m.scan
            FROM m_in m
            JOIN LATERAL (SELECT mailgate_message_status(array_agg(r.status)) AS status
                          FROM r_in r WHERE r.msg_ord = m.ord) s ON true
        ),
        rcpt AS (
            INSERT INTO recipients (message_id, email, kind, status, next_attempt_at)
            SELECT message_id, email, kind, status, due FROM r_in ORDER BY msg_ord, ord
            RETURNING id, message_id, email, status, next_attempt_at
        ),
        -- The queue rows, written here rather than by the mirroring trigger (0037), which
        -- this statement tells to let it be: the accept is the hottest write there is.
        kept AS MATERIALIZED (SELECT set_config('mailgate.queue_kept', 'on', true)),
        queued AS (
            INSERT INTO queue (id, message_id, status, next_attempt_at)
            SELECT id, message_id, status, next_attempt_at FROM rcpt
            WHERE status IN ('queued', 'scheduled', 'held')
        ),
        ev AS (
            INSERT INTO events (message_id, recipient_id, recipient, type, detail)
            SELECT c.message_id, c.id, c.email, c.status,
                   CASE c.status WHEN 'suppressed' THEN 'the address is on the suppression list'
                                 WHEN 'held' THEN 'held by the content policy: ' || m.hold END
            FROM rcpt c JOIN m_in m ON m.id = c.message_id
        )
        SELECT message_id, email, status FROM rcpt CROSS JOIN kept ORDER BY id
        "#,
    )
    .bind(&projects)
    .bind(&keys)
    .bind(&sandboxes)
    .bind(&ids)
    .bind(&froms)
    .bind(&subjects)
    .bind(&message_ids)
    .bind(&mimes)
    .bind(&tags)
    .bind(&metadata)
    .bind(&relays)
    .bind(&send_ats)
    .bind(&r_msg)
    .bind(&r_email)
    .bind(&r_kind)
    .bind(&holds)
    .bind(&scans)
    .fetch_all(&mut *conn)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MessageRow {
    pub id: Uuid,
    pub status: String,
    pub from_addr: String,
    pub subject: String,
    pub message_id: String,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub relay: Option<String>,
    pub sandbox: bool,
    pub send_at: Option<DateTime<Utc>>,
    /// What the content scanners said at accept (rspamd's action, score and symbols; the
    /// virus clamd found), when scanning is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub scan: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When retention (`retention.body_days`) deleted the message's MIME; `null` while it is
    /// kept. Status, recipients and events stay; `GET /v1/emails/{id}/source` then answers 404.
    pub body_purged_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RecipientRow {
    pub email: String,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub smtp_code: Option<i32>,
    pub enhanced_code: Option<String>,
    pub smtp_response: Option<String>,
    pub relay_host: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EventRow {
    /// A recipient status (`delivered`, `bounced`, `complained`, …) or `delayed`, `opened`,
    /// `clicked`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Empty for an open or click of a message with several recipients.
    pub recipient: String,
    pub at: DateTime<Utc>,
    pub attempt: Option<i32>,
    pub smtp_code: Option<i32>,
    pub enhanced_code: Option<String>,
    pub smtp_response: Option<String>,
    pub relay_host: Option<String>,
    pub detail: Option<String>,
    /// What the event carries beyond the SMTP reply: `async` and `dsn` of a bounce reported
    /// by mail, `feedback` of a complaint, `user_agent`, `ip`, `url`, `first_open` of opens
    /// and clicks, `route` of an attempt delivered direct to an MX (`mx`, `ip`,
    /// `implicit_mx`, `egress`, `helo`, `tls`, `pipelined`, `skipped`), and its `tls`
    /// (`version`, `cipher`, `verified`, `policy`: `mta-sts`, `opportunistic` or `none`,
    /// `policy_id`, `mode`, `failures`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}

/// A message of this project only: another project's id reads as absent.
pub async fn find(
    conn: &mut PgConnection,
    project_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<MessageRow>> {
    sqlx::query_as(
        "SELECT id, status, from_addr, subject, message_id, tags, metadata, relay, sandbox, send_at, scan,
                created_at, updated_at, body_purged_at
         FROM messages WHERE id = $1 AND project_id = $2",
    )
    .bind(id)
    .bind(project_id)
    .fetch_optional(conn)
    .await
}

pub async fn recipients(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<RecipientRow>> {
    sqlx::query_as(
        "SELECT email, kind, status, attempts,
                CASE WHEN status IN ('queued', 'deferred', 'scheduled') THEN next_attempt_at END AS next_attempt_at,
                smtp_code, enhanced_code, smtp_response, relay_host, updated_at
         FROM recipients WHERE message_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

pub async fn events(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(
        "SELECT type AS kind, recipient, at, attempt, smtp_code, enhanced_code, smtp_response, relay_host, detail,
                data
         FROM events WHERE message_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// The stored MIME of a message of this project: `Some(None)` once retention deleted it.
pub async fn source(
    pool: &PgPool,
    project_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Option<Vec<u8>>>> {
    sqlx::query_scalar(
        "SELECT CASE WHEN body_purged_at IS NULL THEN mime END
         FROM messages WHERE id = $1 AND project_id = $2",
    )
    .bind(id)
    .bind(project_id)
    .fetch_optional(pool)
    .await
}

/// Filters of `GET /v1/emails`; all optional, combined with AND.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    pub tag: Option<String>,
    pub recipient: Option<String>,
    pub from: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only messages older than this id (the cursor): stable while new mail arrives,
    /// because UUIDv7 ids grow with time.
    pub before: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MessageSummary {
    pub id: Uuid,
    pub status: String,
    pub from_addr: String,
    pub subject: String,
    pub tags: Vec<String>,
    pub recipients: i64,
    pub send_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Newest first, at most `limit` rows of one project.
///
/// The statement names only the filters given, so each combination gets a plan of its own
/// with its conditions in the index scans (one catch-all statement with `$n IS NULL OR …`
/// arms let a cached generic plan walk the project's whole history, bench/scale.sh).
/// `since` and `until` also bound the id ([`id_bounds`]): message ids are v7 (since
/// mailgate's first release), so the bound lets PostgreSQL skip the day partitions outside
/// the range.
pub async fn list(
    pool: &PgPool,
    project_id: Uuid,
    f: &ListFilter,
    limit: i64,
) -> sqlx::Result<Vec<MessageSummary>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT m.id, m.status, m.from_addr, m.subject, m.tags, m.send_at, m.created_at,
                (SELECT count(*) FROM recipients r WHERE r.message_id = m.id) AS recipients
         FROM messages m WHERE m.project_id = ",
    );
    q.push_bind(project_id);
    if let Some(status) = &f.status {
        q.push(" AND m.status = ").push_bind(status);
    }
    if let Some(tag) = &f.tag {
        q.push(" AND m.tags @> ARRAY[")
            .push_bind(tag)
            .push("::text]");
    }
    if let Some(from) = &f.from {
        q.push(" AND m.from_addr = ").push_bind(from);
    }
    let (lowest, above) = id_bounds(f);
    if let Some(since) = f.since {
        q.push(" AND m.created_at >= ").push_bind(since);
    }
    if let Some(until) = f.until {
        q.push(" AND m.created_at < ").push_bind(until);
    }
    if let Some(lowest) = lowest {
        q.push(" AND m.id >= ").push_bind(lowest);
    }
    if let Some(above) = above {
        q.push(" AND m.id < ").push_bind(above);
    }
    if let Some(recipient) = &f.recipient {
        // From the address's own rows (the `recipients_email` index of each day), not a probe
        // of every message the project has: a rare address is then one lookup per day.
        // The id bounds again, so the recipients' days outside them are skipped too.
        q.push(" AND m.id IN (SELECT r.message_id FROM recipients r WHERE lower(r.email) = lower(")
            .push_bind(recipient)
            .push(")");
        if let Some(lowest) = lowest {
            q.push(" AND r.message_id >= ").push_bind(lowest);
        }
        if let Some(above) = above {
            q.push(" AND r.message_id < ").push_bind(above);
        }
        q.push(")");
    }
    q.push(" ORDER BY m.id DESC LIMIT ").push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

/// The message ids a list may hold, from `since`, `until` and the cursor: (lowest, above).
/// A v7 id is made a moment before its `created_at`, on the accepting host's clock; the hour
/// of slack covers the clocks of several hosts. A time outside what a v7 id can hold (before
/// 1970, after the year 10889) bounds nothing.
fn id_bounds(f: &ListFilter) -> (Option<Uuid>, Option<Uuid>) {
    let slack = chrono::Duration::hours(1);
    let lowest = f
        .since
        .and_then(|since| since.checked_sub_signed(slack))
        .and_then(v7_floor);
    let until = f
        .until
        .and_then(|until| until.checked_add_signed(slack))
        .and_then(v7_floor);
    let above = match (until, f.before) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    (lowest, above)
}

/// The smallest v7 id of a moment (its milliseconds, then zeros), as `mailgate_v7_floor`
/// makes it in SQL; `None` outside the 48 bits of milliseconds.
fn v7_floor(at: DateTime<Utc>) -> Option<Uuid> {
    let ms = u64::try_from(at.timestamp_millis()).ok()?;
    if ms >> 48 != 0 {
        return None;
    }
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    Some(Uuid::from_bytes(bytes))
}

/// What cancelling did.
pub enum Cancelled {
    /// These recipients were cancelled.
    Some(u64),
    /// Nothing was left to cancel; these are the statuses found.
    Nothing(Vec<String>),
    NotFound,
}

/// Cancels every recipient not yet handed to a relay (held ones too), with an event each, in
/// one transaction.
pub async fn cancel(pool: &PgPool, project_id: Uuid, id: Uuid) -> sqlx::Result<Cancelled> {
    transition(
        pool,
        Some(project_id),
        id,
        Transition {
            from: &["queued", "scheduled", "deferred", "held"],
            to: "'cancelled'",
            detail: "cancelled through the API",
        },
    )
    .await
}

/// Moves the recipients of a message of `project_id` that are still scheduled (not yet
/// claimed for delivery) to `send_at`, and the message's `send_at` with them. A time already
/// past makes them due at once.
pub async fn reschedule(
    pool: &PgPool,
    project_id: Uuid,
    id: Uuid,
    send_at: DateTime<Utc>,
) -> sqlx::Result<Cancelled> {
    let mut tx = pool.begin().await?;
    let owner: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM messages WHERE id = $1 AND project_id = $2 FOR UPDATE")
            .bind(id)
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?;
    if owner.is_none() {
        return Ok(Cancelled::NotFound);
    }
    // The delivery worker claims a due recipient under `FOR UPDATE SKIP LOCKED` and makes it
    // `sending`; one it holds is not `scheduled` here, or waits for this update.
    let changed = sqlx::query(
        "UPDATE recipients SET next_attempt_at = greatest($2, now()), updated_at = now()
         WHERE message_id = $1 AND status = 'scheduled'",
    )
    .bind(id)
    .bind(send_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        let statuses: Vec<String> =
            sqlx::query_scalar("SELECT status FROM recipients WHERE message_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        return Ok(Cancelled::Nothing(statuses));
    }
    sqlx::query("UPDATE messages SET send_at = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(send_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Cancelled::Some(changed))
}

/// The recipients (message id, address, kind) of these messages of `project_id`, in the
/// order they were given.
pub async fn recipients_of(
    pool: &PgPool,
    project_id: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, String, String)>> {
    sqlx::query_as(
        "SELECT r.message_id, r.email, r.kind FROM recipients r
         JOIN messages m ON m.id = r.message_id
         WHERE r.message_id = ANY($1) AND m.project_id = $2
         ORDER BY r.message_id, r.id",
    )
    .bind(ids)
    .bind(project_id)
    .fetch_all(pool)
    .await
}

/// What becomes of a held message.
pub enum Settle {
    /// Queued (or scheduled, if its time has not come), as if it had just been accepted.
    Release,
    /// Cancelled, with this reason.
    Discard(String),
}

/// Releases or discards the held recipients of a message of `project_id` (any project for
/// the operator: `None`).
pub async fn settle_held(
    pool: &PgPool,
    project_id: Option<Uuid>,
    id: Uuid,
    settle: &Settle,
) -> sqlx::Result<Cancelled> {
    let (to, detail) = match settle {
        Settle::Release => (
            "CASE WHEN m.send_at > now() THEN 'scheduled' ELSE 'queued' END",
            "released from hold".to_string(),
        ),
        Settle::Discard(reason) => ("'cancelled'", format!("discarded from hold: {reason}")),
    };
    transition(
        pool,
        project_id,
        id,
        Transition {
            from: &["held"],
            to,
            detail: &detail,
        },
    )
    .await
}

/// A change of some recipients of one message: from these statuses, to this SQL expression
/// (over `recipients r` and `messages m`), with an event of the new status saying why.
struct Transition<'a> {
    from: &'a [&'a str],
    to: &'a str,
    detail: &'a str,
}

async fn transition(
    pool: &PgPool,
    project_id: Option<Uuid>,
    id: Uuid,
    t: Transition<'_>,
) -> sqlx::Result<Cancelled> {
    let mut tx = pool.begin().await?;
    let owner: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM messages WHERE id = $1 AND ($2::uuid IS NULL OR project_id = $2) FOR UPDATE",
    )
    .bind(id)
    .bind(project_id)
    .fetch_optional(&mut *tx)
    .await?;
    if owner.is_none() {
        return Ok(Cancelled::NotFound);
    }
    // `to` is one of this module's constant expressions, never input.
    let sql = format!(
        r#"
        WITH upd AS (
            UPDATE recipients r SET status = {to}, lease_owner = NULL, lease_until = NULL,
                   next_attempt_at = greatest(coalesce(m.send_at, now()), now()), updated_at = now()
            FROM messages m
            WHERE m.id = r.message_id AND r.message_id = $1 AND r.status = ANY($2)
            RETURNING r.id, r.email, r.status
        ), ev AS (
            INSERT INTO events (message_id, recipient_id, recipient, type, detail)
            SELECT $1, id, email, status, $3 FROM upd
        )
        SELECT count(*) FROM upd
        "#,
        to = t.to
    );
    let changed: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(t.from)
        .bind(t.detail)
        .fetch_one(&mut *tx)
        .await?;
    if changed == 0 {
        let statuses: Vec<String> =
            sqlx::query_scalar("SELECT status FROM recipients WHERE message_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        return Ok(Cancelled::Nothing(statuses));
    }
    refresh_status(&mut tx, &[id]).await?;
    tx.commit().await?;
    Ok(Cancelled::Some(changed as u64))
}

/// Cancels held mail older than `hours` (up to `batch` recipients); returns how many.
pub async fn expire_held(pool: &PgPool, hours: u64, batch: i64) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let messages: Vec<Uuid> = sqlx::query_scalar(
        r#"
        WITH old AS (
            -- Held mail is found in `queue` (0037); the recipient is locked, as every writer
            -- but the claim does, and must still be held.
            SELECT r.message_id, r.id FROM queue q
            JOIN recipients r ON r.message_id = q.message_id AND r.id = q.id
            JOIN messages m ON m.id = r.message_id
            WHERE q.status = 'held' AND r.status = 'held'
              AND m.created_at < now() - make_interval(hours => $1::int)
            LIMIT $2 FOR UPDATE OF r SKIP LOCKED
        ), upd AS (
            UPDATE recipients r SET status = 'cancelled', updated_at = now()
            -- The whole primary key: one probe in the message's day partition.
            FROM old WHERE r.message_id = old.message_id AND r.id = old.id
            RETURNING r.id, r.message_id, r.email
        ), ev AS (
            INSERT INTO events (message_id, recipient_id, recipient, type, detail)
            SELECT message_id, id, email, 'cancelled',
                   'the hold expired after ' || $1::int || ' h without a release'
            FROM upd
        )
        SELECT DISTINCT message_id FROM upd
        "#,
    )
    .bind(i32::try_from(hours).unwrap_or(i32::MAX))
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    refresh_status(&mut tx, &messages).await?;
    tx.commit().await?;
    Ok(messages.len() as u64)
}

/// The project a message belongs to (for the operator, who names no project).
pub async fn project_of(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT project_id FROM messages WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Deletes up to `batch` finished messages made before `before` (recipients and events go
/// with them); returns how many. Messages still in flight are never deleted.
pub async fn purge_finished(pool: &PgPool, before: DateTime<Utc>, batch: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        r#"
        DELETE FROM messages WHERE id IN (
            SELECT m.id FROM messages m
            WHERE m.created_at < $1
              AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id
                              AND r.status IN ('queued', 'scheduled', 'sending', 'deferred'))
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        "#,
    )
    .bind(before)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Clears the MIME of up to `batch` finished messages older than `older_than_secs` (their
/// status, recipients and events stay); returns how many.
pub async fn purge_bodies(pool: &PgPool, older_than_secs: f64, batch: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        r#"
        UPDATE messages SET mime = ''::bytea, body_purged_at = now()
        WHERE id IN (
            SELECT m.id FROM messages m
            WHERE m.body_purged_at IS NULL
              AND m.created_at < now() - make_interval(secs => $1)
              AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id
                              AND r.status IN ('queued', 'scheduled', 'sending', 'deferred', 'held'))
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        "#,
    )
    .bind(older_than_secs)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Brings the stored status of these messages in line with their recipients'.
pub async fn refresh_status(tx: &mut PgConnection, message_ids: &[Uuid]) -> sqlx::Result<()> {
    // The lowest and highest id bound the day partitions read and written: PostgreSQL prunes
    // partitions by a range of parameters when a statement starts, but not by `= ANY` of an
    // array parameter, so without them the (generic) plan probes every day kept for every id.
    let (Some(lowest), Some(highest)) = (message_ids.iter().min(), message_ids.iter().max()) else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE messages m SET status = s.status, updated_at = now()
         FROM (SELECT message_id, mailgate_message_status(array_agg(status)) AS status
               FROM recipients WHERE message_id = ANY($1) AND message_id BETWEEN $2 AND $3
               GROUP BY message_id) s
         WHERE m.id = s.message_id AND m.id BETWEEN $2 AND $3
           AND m.status IS DISTINCT FROM s.status",
    )
    .bind(message_ids)
    .bind(lowest)
    .bind(highest)
    .execute(tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v7_floor_lies_between_the_ids_of_its_millisecond_and_the_one_before() {
        let at: DateTime<Utc> = "2026-12-07T12:00:00.123Z".parse().unwrap();
        let id = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            at.timestamp() as u64,
            at.timestamp_subsec_nanos(),
        ));
        let floor = v7_floor(at).unwrap();
        assert!(floor <= id);
        assert!(v7_floor(at + chrono::Duration::milliseconds(1)).unwrap() > id);
        assert!(v7_floor(at - chrono::Duration::milliseconds(1)).unwrap() < floor);
        assert_eq!(
            v7_floor(DateTime::UNIX_EPOCH),
            Some(Uuid::nil()),
            "the epoch is the nil id"
        );
    }

    #[test]
    fn times_a_v7_id_cannot_hold_bound_nothing() {
        let before_1970: DateTime<Utc> = "1969-06-01T00:00:00Z".parse().unwrap();
        assert_eq!(v7_floor(before_1970), None);
        // 2^49 ms: about the year 19800.
        let far = DateTime::<Utc>::from_timestamp_millis(1 << 49).unwrap();
        assert_eq!(v7_floor(far), None);
        let f = ListFilter {
            since: Some(before_1970),
            until: Some(far),
            ..Default::default()
        };
        assert_eq!(id_bounds(&f), (None, None));
        let cursor = Uuid::now_v7();
        let f = ListFilter {
            until: Some(Utc::now() + chrono::Duration::days(1)),
            before: Some(cursor),
            ..Default::default()
        };
        assert_eq!(
            id_bounds(&f).1,
            Some(cursor),
            "the nearer of cursor and until"
        );
    }
}
