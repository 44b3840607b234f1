//! TLS-RPT (RFC 8460) tables: session counts per policy domain and day (`tlsrpt_sessions`),
//! and the daily reports, each claimed by one instance at a time (`tlsrpt_reports`).

use chrono::NaiveDate;
use sqlx::PgPool;

/// Sessions to add to one row of `tlsrpt_sessions`.
#[derive(Debug, Clone)]
pub struct SessionCount {
    pub day: NaiveDate,
    pub policy_domain: String,
    pub policy_type: &'static str,
    pub policy_key: String,
    pub policy_strings: Vec<String>,
    pub mx_hosts: Vec<String>,
    /// `success`, or an RFC 8460 result type.
    pub result: &'static str,
    pub receiving_mx: String,
    pub receiving_ip: String,
    pub detail: Option<String>,
    pub sessions: i64,
}

/// Adds the counts, in one transaction (the caller has summed them per row already).
pub async fn add_sessions(pool: &PgPool, counts: &[SessionCount]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for c in counts {
        sqlx::query(
            "INSERT INTO tlsrpt_sessions (day, policy_domain, policy_type, policy_key,
                 policy_strings, mx_hosts, result, receiving_mx, receiving_ip, detail, sessions)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (day, policy_domain, policy_type, policy_key, result, receiving_mx,
                          receiving_ip)
             DO UPDATE SET sessions = tlsrpt_sessions.sessions + EXCLUDED.sessions,
                 policy_strings = EXCLUDED.policy_strings, mx_hosts = EXCLUDED.mx_hosts,
                 detail = COALESCE(EXCLUDED.detail, tlsrpt_sessions.detail)",
        )
        .bind(c.day)
        .bind(&c.policy_domain)
        .bind(c.policy_type)
        .bind(&c.policy_key)
        .bind(&c.policy_strings)
        .bind(&c.mx_hosts)
        .bind(c.result)
        .bind(&c.receiving_mx)
        .bind(&c.receiving_ip)
        .bind(&c.detail)
        .bind(c.sessions)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// One row of `tlsrpt_sessions`, as a report reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub policy_type: String,
    pub policy_key: String,
    pub policy_strings: Vec<String>,
    pub mx_hosts: Vec<String>,
    pub result: String,
    pub receiving_mx: String,
    pub receiving_ip: String,
    pub detail: Option<String>,
    pub sessions: i64,
}

/// Everything counted for `domain` on `day`.
pub async fn sessions(
    pool: &PgPool,
    day: NaiveDate,
    domain: &str,
) -> sqlx::Result<Vec<SessionRow>> {
    sqlx::query_as(
        "SELECT policy_type, policy_key, policy_strings, mx_hosts, result, receiving_mx,
                receiving_ip, detail, sessions
         FROM tlsrpt_sessions WHERE day = $1 AND policy_domain = $2
         ORDER BY policy_type, policy_key, result, receiving_mx, receiving_ip",
    )
    .bind(day)
    .bind(domain)
    .fetch_all(pool)
    .await
}

/// Makes the report rows of `day`: one per policy domain with sessions that day, each with
/// a report id of its own. Rows already there stay as they are.
pub async fn open_reports(pool: &PgPool, day: NaiveDate) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO tlsrpt_reports (day, policy_domain, report_id)
         SELECT DISTINCT day, policy_domain,
                to_char(day, 'YYYY-MM-DD') || '.' || md5(random()::text || policy_domain)
         FROM tlsrpt_sessions WHERE day = $1
         ON CONFLICT (day, policy_domain) DO NOTHING",
    )
    .bind(day)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// A report this instance holds until `claimed_until`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedReport {
    pub day: NaiveDate,
    pub policy_domain: String,
    pub report_id: String,
    /// Counting this one.
    pub attempts: i32,
    pub delivered_to: Vec<String>,
}

/// Takes one pending report that is due (of `day` only, when given) for `lease_secs`, and
/// counts the attempt; none when there is none. `SKIP LOCKED` and the lease keep two
/// instances from taking the same report.
pub async fn claim(
    pool: &PgPool,
    day: Option<NaiveDate>,
    lease_secs: f64,
) -> sqlx::Result<Option<ClaimedReport>> {
    sqlx::query_as(
        "UPDATE tlsrpt_reports r
         SET claimed_until = now() + $2 * interval '1 second', attempts = r.attempts + 1
         FROM (SELECT day, policy_domain FROM tlsrpt_reports
               WHERE status = 'pending' AND next_try <= now()
                 AND (claimed_until IS NULL OR claimed_until < now())
                 AND ($1::date IS NULL OR day = $1)
               ORDER BY next_try
               LIMIT 1
               FOR UPDATE SKIP LOCKED) due
         WHERE r.day = due.day AND r.policy_domain = due.policy_domain
         RETURNING r.day, r.policy_domain, r.report_id, r.attempts, r.delivered_to",
    )
    .bind(day)
    .bind(lease_secs)
    .fetch_optional(pool)
    .await
}

/// How a claimed report's attempt ended.
pub enum Settled<'a> {
    /// Every `rua` has it.
    Sent,
    /// The domain publishes no TLS-RPT record: nobody to send to.
    Skipped(&'a str),
    /// Try again after `retry_secs`.
    Retry { retry_secs: f64, error: &'a str },
    /// Given up.
    Failed(&'a str),
}

/// Records how the attempt on a claimed report ended, and which `rua` URIs have it now.
pub async fn settle(
    pool: &PgPool,
    report: &ClaimedReport,
    delivered_to: &[String],
    settled: Settled<'_>,
) -> sqlx::Result<()> {
    let (status, retry_secs, error) = match settled {
        Settled::Sent => ("sent", 0.0, None),
        Settled::Skipped(why) => ("skipped", 0.0, Some(why)),
        Settled::Retry { retry_secs, error } => ("pending", retry_secs, Some(error)),
        Settled::Failed(error) => ("failed", 0.0, Some(error)),
    };
    sqlx::query(
        "UPDATE tlsrpt_reports
         SET status = $3, next_try = now() + $4 * interval '1 second', claimed_until = NULL,
             last_error = $5, delivered_to = $6,
             sent_at = CASE WHEN $3 = 'sent' THEN now() END
         WHERE day = $1 AND policy_domain = $2",
    )
    .bind(report.day)
    .bind(&report.policy_domain)
    .bind(status)
    .bind(retry_secs)
    .bind(error)
    .bind(delivered_to)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes counts and reports of days before `before`.
pub async fn purge_before(pool: &PgPool, before: NaiveDate) -> sqlx::Result<u64> {
    let sessions = sqlx::query("DELETE FROM tlsrpt_sessions WHERE day < $1")
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected();
    let reports = sqlx::query("DELETE FROM tlsrpt_reports WHERE day < $1")
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(sessions + reports)
}
