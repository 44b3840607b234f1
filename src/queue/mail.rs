//! The mail queue: one row per recipient in `recipients`, claimed by the delivery runner.
//! Owns the mail-only job and outcome types (`Job`, `Outcome`), claiming due recipients,
//! recording a batch of outcomes (recipient rows, events, suppressions, message statuses) in
//! one transaction, and the operator's views of the queue (`stats`, `depth`, `retry_now`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{LeaseTable, LeasedQueue, wake::Waker};
use crate::{domain::RecipientStatus, store::messages::refresh_status};

/// The mail queue as the runner works it. Recording outcomes records events, which enqueue
/// webhook deliveries, so it wakes the webhook runner.
pub struct MailQueue {
    pool: PgPool,
    webhooks: Waker,
}

impl MailQueue {
    pub fn new(pool: PgPool, webhooks: Waker) -> Self {
        Self { pool, webhooks }
    }
}

/// `recipients` as a lease table: a recipient handed back untried waits as it did before
/// its claim; one whose runner died was tried, so it is deferred.
pub const RECIPIENTS: LeaseTable = LeaseTable {
    name: "recipients",
    claimed: "sending",
    released: "CASE WHEN attempts <= 1 THEN 'queued' ELSE 'deferred' END",
    reclaimed: "deferred",
    waiting_in: "queue",
    reclaim_note: "",
    due: "t.status IN ('queued', 'deferred', 'scheduled') AND t.next_attempt_at <= now()",
    updated_at: true,
};

impl LeasedQueue for MailQueue {
    type Id = i64;
    type Job = Job;
    type Outcome = Outcome;
    const NAME: &'static str = "delivery";
    const TABLE: &'static LeaseTable = &RECIPIENTS;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn job_id(job: &Job) -> i64 {
        job.recipient_id
    }
    fn outcome_id(outcome: &Outcome) -> i64 {
        outcome.recipient_id
    }
    async fn claim(&self, owner: Uuid, limit: i64, lease: Duration) -> sqlx::Result<Vec<Job>> {
        claim(&self.pool, owner, limit, lease.as_secs_f64()).await
    }
    async fn complete(&self, owner: Uuid, outcomes: &[Outcome]) -> sqlx::Result<()> {
        let (later, done): (Vec<Outcome>, Vec<Outcome>) =
            outcomes.iter().cloned().partition(|o| o.postponed);
        postpone(&self.pool, owner, &later).await?;
        // Only when an endpoint wants one of these events: a woken runner that finds nothing
        // costs a claim statement, and most projects have no endpoint.
        if complete(&self.pool, owner, &done).await?.webhooks {
            self.webhooks.wake();
        }
        Ok(())
    }
    async fn reclaim_expired(&self, limit: i64) -> sqlx::Result<u64> {
        let messages = reclaim_expired(&self.pool, limit).await?;
        if !messages.is_empty() {
            // Each put-back recipient got a `deferred` event.
            self.webhooks.wake();
        }
        Ok(messages.len() as u64)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub recipient_id: i64,
    pub message_id: Uuid,
    pub project_id: Uuid,
    pub email: String,
    /// This attempt's number, starting at 1.
    pub attempts: i32,
    pub from_addr: String,
    pub mime: Vec<u8>,
    pub relay: Option<String>,
    pub sandbox: bool,
    pub accepted_at: DateTime<Utc>,
    /// The project's own bounce domain for VERP return paths, if it has one.
    pub bounce_domain: Option<String>,
    /// How many recipients of this claim (this one included) belong to the same message and
    /// recipient domain: direct delivery gathers them into one transaction, and waits for
    /// no one when this is 1.
    #[sqlx(skip)]
    pub together: u32,
}

/// What one attempt came to, for one recipient.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub recipient_id: i64,
    /// The recipient's message: with the recipient id, the whole primary key, so recording
    /// the outcome looks in the message's day partition only (not one index probe per day).
    pub message_id: Uuid,
    pub attempt: i32,
    pub status: RecipientStatus,
    /// When to try again, for `Deferred`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub smtp_code: Option<i32>,
    pub enhanced_code: Option<String>,
    pub smtp_response: Option<String>,
    pub relay_host: Option<String>,
    pub detail: Option<String>,
    /// Goes to the event's `data` (direct delivery: the attempt's `route`).
    pub data: Option<serde_json::Value>,
    /// Not an attempt: the relay had no room (its rate, its connections, a throttling
    /// back-off). The recipient goes back to the queue until `next_attempt_at`, its attempt
    /// uncounted and no event recorded.
    pub postponed: bool,
}

pub async fn claim(
    pool: &PgPool,
    owner: Uuid,
    limit: i64,
    lease_secs: f64,
) -> sqlx::Result<Vec<Job>> {
    sqlx::query_as(
        r#"
        -- The claim's commit does not wait for its WAL to reach the disk (a flush per claim,
        -- the queue's only one besides the outcome's). Nothing can be lost by it: a claim
        -- that a PostgreSQL crash undoes puts the recipient back in the queue, and it is
        -- tried again, as after a process that died mid-delivery; the outcome's commit waits
        -- for the flush, which carries every earlier claim with it.
        WITH async_commit AS MATERIALIZED (
            SELECT set_config('synchronous_commit', 'off', true)
        ), due AS MATERIALIZED (
            -- The queue's own table (0037): one index, not one per day partition.
            SELECT message_id, id FROM queue
            WHERE status IN ('queued', 'deferred', 'scheduled') AND next_attempt_at <= now()
            ORDER BY next_attempt_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        ), free AS MATERIALIZED (
            -- Only the recipients no other writer holds: that writer locked the recipient
            -- first and waits, through the mirroring trigger, for the queue row locked above;
            -- waiting for it here would close the circle. Its recipient is claimed later, if
            -- it still waits. The whole primary key: one probe in the message's day partition.
            SELECT r.message_id, r.id FROM due JOIN recipients r
                ON r.message_id = due.message_id AND r.id = due.id
            WHERE r.status IN ('queued', 'deferred', 'scheduled')
            FOR UPDATE OF r SKIP LOCKED
        ), claimed AS (
            UPDATE recipients r
            SET status = 'sending', attempts = r.attempts + 1, lease_owner = $2,
                lease_until = now() + make_interval(secs => $3), updated_at = now()
            FROM free WHERE r.message_id = free.message_id AND r.id = free.id
            RETURNING r.id, r.message_id, r.email, r.attempts, r.lease_until
        ), leased AS (
            -- The queue rows, written here rather than by the mirroring trigger (0037),
            -- which `kept` tells to let this statement be.
            UPDATE queue q SET status = 'sending', lease_owner = $2, lease_until = c.lease_until
            FROM claimed c WHERE q.id = c.id
        ), kept AS MATERIALIZED (
            SELECT set_config('mailgate.queue_kept', 'on', true)
        )
        SELECT c.id AS recipient_id, c.message_id, m.project_id, c.email, c.attempts,
               m.from_addr, m.mime, coalesce(m.relay, p.default_relay) AS relay, m.sandbox,
               m.created_at AS accepted_at, p.bounce_domain
        FROM claimed c JOIN messages m ON m.id = c.message_id JOIN projects p ON p.id = m.project_id
        -- Read, so the settings are made (a CTE nobody reads is never run).
        CROSS JOIN async_commit CROSS JOIN kept
        -- A message's recipients in the order they were given (one SMTP transaction's RCPTs).
        ORDER BY c.id
        "#,
    )
    .bind(limit)
    .bind(owner)
    .bind(lease_secs)
    .fetch_all(pool)
    .await
    .map(count_together)
}

/// Sets each job's [`Job::together`]: the claimed recipients of its message at its domain.
fn count_together(mut jobs: Vec<Job>) -> Vec<Job> {
    let domain = |job: &Job| {
        job.email
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default()
    };
    let mut counts: std::collections::HashMap<(Uuid, String), u32> = Default::default();
    for job in &jobs {
        *counts.entry((job.message_id, domain(job))).or_default() += 1;
    }
    for job in &mut jobs {
        job.together = counts[&(job.message_id, domain(job))];
    }
    jobs
}

/// What recording a batch of outcomes changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Completed {
    /// Messages with a recipient recorded (outcomes of lost leases are not).
    pub messages: u64,
    /// Whether an enabled endpoint of a message's project wants one of the recorded events,
    /// so webhook deliveries were enqueued with them.
    pub webhooks: bool,
}

/// Records a batch of outcomes: recipient rows, events, suppressions for bounces and the
/// messages' summary status, in one transaction.
pub async fn complete(pool: &PgPool, owner: Uuid, outcomes: &[Outcome]) -> sqlx::Result<Completed> {
    if outcomes.is_empty() {
        return Ok(Completed::default());
    }
    let ids: Vec<i64> = outcomes.iter().map(|o| o.recipient_id).collect();
    let outcome_messages: Vec<Uuid> = outcomes.iter().map(|o| o.message_id).collect();
    let attempts: Vec<i32> = outcomes.iter().map(|o| o.attempt).collect();
    let statuses: Vec<&str> = outcomes.iter().map(|o| o.status.as_str()).collect();
    let next: Vec<Option<DateTime<Utc>>> = outcomes.iter().map(|o| o.next_attempt_at).collect();
    let codes: Vec<Option<i32>> = outcomes.iter().map(|o| o.smtp_code).collect();
    let enhanced: Vec<Option<&str>> = outcomes
        .iter()
        .map(|o| o.enhanced_code.as_deref())
        .collect();
    let responses: Vec<Option<&str>> = outcomes
        .iter()
        .map(|o| o.smtp_response.as_deref())
        .collect();
    let hosts: Vec<Option<&str>> = outcomes.iter().map(|o| o.relay_host.as_deref()).collect();
    let details: Vec<Option<&str>> = outcomes.iter().map(|o| o.detail.as_deref()).collect();
    let data: Vec<Option<&serde_json::Value>> = outcomes.iter().map(|o| o.data.as_ref()).collect();

    let mut tx = pool.begin().await?;
    // Each outcome's row by its primary key, one probe in its day partition. Left to choose,
    // the planner joins the locked rows to `recipients` by hashing the whole table (every day
    // kept: 0.25 s a batch at 300,000 rows, growing with the history; bench/scale.sh), since
    // it cannot see that the message ids name one or two days.
    sqlx::query("SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)")
        .execute(&mut *tx)
        .await?;
    let recorded: Vec<(Uuid, bool)> = sqlx::query_as(
        r#"
        WITH input AS (
            SELECT * FROM unnest($2::bigint[], $12::uuid[], $3::int[], $4::text[], $5::timestamptz[],
                                 $6::int[], $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[])
                AS t(id, message_id, attempt, status, next_at, code, enhanced, response, host, detail, data)
        ), fenced AS MATERIALIZED (
            -- One primary-key probe per outcome, locking the rows this lease still holds. The
            -- fence is checked here, not in the UPDATE below: there the planner would estimate
            -- it from statistics taken while the rows were still queued (about one row) and
            -- scan the whole table once per outcome, quadratic on a large backlog. The message
            -- id prunes each probe to the message's day partition; by the recipient id alone
            -- it would be one index probe per day kept.
            SELECT i.* FROM input i
            CROSS JOIN LATERAL (
                SELECT 1 FROM recipients r0
                WHERE r0.message_id = i.message_id AND r0.id = i.id
                  AND r0.attempts = i.attempt AND r0.lease_owner = $1
                  AND r0.status IN ('sending', 'deferred')
                FOR UPDATE OF r0
            ) held
        ), upd AS (
            -- The rows are locked by this transaction, so they still pass the fence.
            UPDATE recipients r
            SET status = i.status, next_attempt_at = coalesce(i.next_at, r.next_attempt_at),
                lease_owner = NULL, lease_until = NULL, smtp_code = i.code, enhanced_code = i.enhanced,
                smtp_response = i.response, relay_host = i.host, updated_at = now()
            -- The whole primary key: one probe in the message's day partition, not one per day.
            FROM fenced i
            WHERE r.message_id = i.message_id AND r.id = i.id
            RETURNING r.id, r.message_id, r.email, i.attempt, i.status, i.code, i.enhanced, i.response,
                      i.host, i.detail, i.data, r.next_attempt_at
        ), unqueued AS (
            -- The queue rows, kept here rather than by the mirroring trigger (0037), which
            -- `kept` tells to let this statement be: a deferred recipient waits again, any
            -- other outcome leaves the queue.
            DELETE FROM queue q USING upd u WHERE q.id = u.id AND u.status <> 'deferred'
        ), requeued AS (
            UPDATE queue q SET status = 'deferred', next_attempt_at = u.next_attempt_at,
                               lease_owner = NULL, lease_until = NULL
            FROM upd u WHERE q.id = u.id AND u.status = 'deferred'
        ), kept AS MATERIALIZED (
            SELECT set_config('mailgate.queue_kept', 'on', true)
        ), ev AS (
            INSERT INTO events (message_id, recipient_id, recipient, type, attempt, smtp_code,
                                enhanced_code, smtp_response, relay_host, detail, data)
            SELECT message_id, id, email, status, attempt, code, enhanced, response, host, detail,
                   data FROM upd
        ), sup AS (
            INSERT INTO suppressions (project_id, email, reason, detail)
            SELECT m.project_id, lower(u.email), 'bounce', u.response
            FROM upd u JOIN messages m ON m.id = u.message_id
            -- Only a bounce a server answered says the mailbox is bad; one mailgate decided
            -- (5.6.7: the relay lacks SMTPUTF8) is about the path, not the address.
            WHERE u.status = 'bounced' AND u.code IS NOT NULL
            ON CONFLICT DO NOTHING
        )
        -- Per message: whether an endpoint takes one of its events (as the webhook trigger
        -- on `events` matches them).
        SELECT u.message_id,
               bool_or(EXISTS (SELECT 1 FROM webhook_endpoints w
                               WHERE w.project_id = m.project_id AND w.enabled
                                 AND (w.event_types IS NULL
                                      OR 'email.' || u.status = ANY (w.event_types))))
        FROM upd u JOIN messages m ON m.id = u.message_id CROSS JOIN kept
        GROUP BY u.message_id
        "#,
    )
    .bind(owner)
    .bind(&ids)
    .bind(&attempts)
    .bind(&statuses)
    .bind(&next)
    .bind(&codes)
    .bind(&enhanced)
    .bind(&responses)
    .bind(&hosts)
    .bind(&details)
    .bind(&data)
    .bind(&outcome_messages)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("SELECT set_config('enable_hashjoin', 'on', true), set_config('enable_mergejoin', 'on', true)")
        .execute(&mut *tx)
        .await?;
    let message_ids: Vec<Uuid> = recorded.iter().map(|(id, _)| *id).collect();
    refresh_status(&mut tx, &message_ids).await?;
    tx.commit().await?;
    Ok(Completed {
        messages: message_ids.len() as u64,
        webhooks: recorded.iter().any(|(_, hooked)| *hooked),
    })
}

/// Puts back recipients whose relay had no room, due again at their `next_attempt_at`; like
/// a release, no attempt is counted.
pub async fn postpone(pool: &PgPool, owner: Uuid, outcomes: &[Outcome]) -> sqlx::Result<u64> {
    if outcomes.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = outcomes.iter().map(|o| o.recipient_id).collect();
    let outcome_messages: Vec<Uuid> = outcomes.iter().map(|o| o.message_id).collect();
    let attempts: Vec<i32> = outcomes.iter().map(|o| o.attempt).collect();
    let due: Vec<DateTime<Utc>> = outcomes
        .iter()
        .map(|o| o.next_attempt_at.unwrap_or_else(Utc::now))
        .collect();
    let done = sqlx::query(
        "UPDATE recipients r
         SET status = CASE WHEN r.attempts <= 1 THEN 'queued' ELSE 'deferred' END,
             attempts = r.attempts - 1, lease_owner = NULL, lease_until = NULL,
             next_attempt_at = i.due, updated_at = now()
         FROM unnest($1::bigint[], $5::uuid[], $2::int[], $3::timestamptz[])
             AS i(id, message_id, attempt, due)
         -- The whole primary key: one probe in the message's day partition.
         WHERE r.message_id = i.message_id AND r.id = i.id AND r.attempts = i.attempt
           AND r.lease_owner = $4 AND r.status = 'sending'",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(&due)
    .bind(owner)
    .bind(&outcome_messages)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Puts back jobs whose worker died mid-delivery. The outcome of that attempt is unknown,
/// so the recipient is deferred for an immediate retry and the event says why. Returns the
/// messages whose recipients were put back.
pub async fn reclaim_expired(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    let mut tx = pool.begin().await?;
    let ids: Vec<i64> = RECIPIENTS.reclaim_expired(&mut tx, limit).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let message_ids: Vec<Uuid> = sqlx::query_scalar(
        r#"
        WITH ev AS (
            INSERT INTO events (message_id, recipient_id, recipient, type, attempt, detail)
            SELECT message_id, id, email, 'deferred', attempts,
                   'lease expired: the worker stopped during delivery; retrying'
            FROM recipients WHERE id = ANY($1)
            RETURNING message_id
        )
        SELECT DISTINCT message_id FROM ev
        "#,
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    refresh_status(&mut tx, &message_ids).await?;
    tx.commit().await?;
    Ok(message_ids)
}

pub struct Stats {
    pub by_status: Vec<(String, i64)>,
    pub oldest_waiting_secs: Option<f64>,
}

/// Every recipient status with its count, and how long the oldest due one has waited: the
/// operator's whole picture (`mailgate queue stats`, the console's queue page). It reads every
/// recipient row, so nothing that runs unasked (a scrape, a probe) calls it; they use `depth`.
pub async fn stats(pool: &PgPool) -> sqlx::Result<Stats> {
    let by_status =
        sqlx::query_as("SELECT status, count(*) FROM recipients GROUP BY status ORDER BY status")
            .fetch_all(pool)
            .await?;
    Ok(Stats {
        by_status,
        oldest_waiting_secs: oldest_waiting_secs(pool).await?,
    })
}

/// How long the oldest due recipient has waited: the first entries of the `queue_due`
/// index, however long the queue.
async fn oldest_waiting_secs(
    db: impl sqlx::Executor<'_, Database = sqlx::Postgres>,
) -> sqlx::Result<Option<f64>> {
    sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - min(next_attempt_at))::float8 FROM queue
         WHERE status IN ('queued', 'deferred') AND next_attempt_at <= now()",
    )
    .fetch_one(db)
    .await
}

/// The statuses `depth` counts: waiting, in a relay's hands, or held by the content policy.
pub const WAITING: [RecipientStatus; 5] = [
    RecipientStatus::Queued,
    RecipientStatus::Scheduled,
    RecipientStatus::Sending,
    RecipientStatus::Deferred,
    RecipientStatus::Held,
];

/// `depth` stops counting a status here, so a deeper backlog reads as this many.
pub const DEPTH_CAP: i64 = 100_000;

/// Recipients waiting or in flight, by status (those with none left out), each counted up to
/// [`DEPTH_CAP`], and how long the oldest due one has waited: for `/metrics`, `/readyz` and
/// `mailgate doctor`, which run whenever a scraper or a load balancer asks.
///
/// Why a bounded query rather than counters: `recipients` keeps every delivered row for
/// `retention.days`, so counting by status over the table (what this did before) costs a
/// scan of the whole history on each scrape. Counters kept up to date on each transition
/// would make every completion batch of every process update the same few rows, which
/// serialises the commits the queue is built to spread out, and in-process counters would
/// only know this process's share of a shared queue. So each status is counted in `queue`
/// (0037), which holds only the rows waiting, in flight or held, never the history, through
/// its partial indexes where one matches, and stops at `DEPTH_CAP`. Sequential
/// scans are switched off for the statement: on a small or freshly loaded table the planner
/// would otherwise read the whole table, and the cost of a scrape must not depend on it.
pub async fn depth(pool: &PgPool) -> sqlx::Result<Stats> {
    // One literal per status (the planner matches a partial index only on constants); the
    // names are this file's own constants, never input.
    let sql = WAITING
        .iter()
        .map(|status| {
            let status = status.as_str();
            format!(
                "SELECT '{status}'::text, (SELECT count(*) FROM (SELECT 1 FROM queue \
                 WHERE status = '{status}' LIMIT $1) capped)"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await?;
    let counts: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(DEPTH_CAP)
        .fetch_all(&mut *tx)
        .await?;
    let oldest_waiting_secs = oldest_waiting_secs(&mut *tx).await?;
    tx.commit().await?;
    Ok(Stats {
        by_status: counts.into_iter().filter(|(_, n)| *n > 0).collect(),
        oldest_waiting_secs,
    })
}

/// Makes deferred recipients due now, or puts failed ones back in the queue with a fresh
/// attempt budget; each gets an event saying an operator did it.
pub async fn retry_now(
    pool: &PgPool,
    status: &str,
    project_id: Option<Uuid>,
) -> Result<u64, String> {
    if status != "deferred" && status != "failed" {
        return Err(format!(
            "can retry deferred or failed recipients, not `{status}`"
        ));
    }
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    let message_ids: Vec<Uuid> = sqlx::query_scalar(
        r#"
        WITH upd AS (
            UPDATE recipients r
            SET status = CASE WHEN r.status = 'failed' THEN 'queued' ELSE r.status END,
                attempts = CASE WHEN r.status = 'failed' THEN 0 ELSE r.attempts END,
                next_attempt_at = now(), updated_at = now()
            FROM messages m
            WHERE m.id = r.message_id AND r.status = $1 AND ($2::uuid IS NULL OR m.project_id = $2)
            RETURNING r.id, r.message_id, r.email, r.status
        ), ev AS (
            INSERT INTO events (message_id, recipient_id, recipient, type, detail)
            SELECT message_id, id, email, status, 'retry requested by an operator' FROM upd
        )
        SELECT message_id FROM upd
        "#,
    )
    .bind(status)
    .bind(project_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| e.to_string())?;
    let mut distinct = message_ids.clone();
    distinct.sort();
    distinct.dedup();
    refresh_status(&mut tx, &distinct)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(message_ids.len() as u64)
}
