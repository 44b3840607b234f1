//! The lease store every queue table shares: renewing (`extend`), handing back (`release`),
//! taking back from dead processes (`reclaim_expired`) and the `busy` check, written once
//! over a [`LeaseTable`] that says how one table spells its statuses. A row's `lease_owner`
//! is its process's holder id (`holder`), so a dead process's rows are found by its id.
//!
//! Each queue table has `id`, `status`, `attempts`, `next_attempt_at`, `lease_owner` and
//! `lease_until`. A claim sets the table's `claimed` status, counts the attempt and leases the
//! row; every write here is fenced by the lease owner and that status. Claims and the
//! recording of outcomes differ per queue and stay with each queue.

use std::{fmt::Debug, hash::Hash, time::Duration};

use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, postgres::PgHasArrayType};
use uuid::Uuid;

/// How one queue table leases its rows. Only constants are formatted into the statements,
/// so a table name or a status never comes from input.
#[derive(Debug)]
pub struct LeaseTable {
    pub name: &'static str,
    /// The status of a row a runner holds.
    pub claimed: &'static str,
    /// SQL: the status of a row handed back untried (its attempt uncounted).
    pub released: &'static str,
    /// The status of a row whose runner died: the attempt happened, its outcome is unknown.
    pub reclaimed: &'static str,
    /// SQL: more assignments when a row is reclaimed (`, error = '…'`), or empty.
    pub reclaim_note: &'static str,
    /// SQL over the row (aliased `t`): it waits and is due now.
    pub due: &'static str,
    /// The table the searches for claimed, expired and due rows read: the table itself, or
    /// one that mirrors its waiting rows with the same `id`, `status`, `next_attempt_at`,
    /// `lease_owner` and `lease_until` under the indexes (`recipients`: `queue`, 0037).
    pub waiting_in: &'static str,
    /// Whether the table keeps an `updated_at`.
    pub updated_at: bool,
}

/// A queue's row id as the lease statements bind it and read it back: `bigint` or `uuid`.
pub trait LeaseId:
    Copy
    + Eq
    + Hash
    + Debug
    + Send
    + Sync
    + Unpin
    + 'static
    + for<'q> sqlx::Encode<'q, Postgres>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
    + PgHasArrayType
{
}

impl LeaseId for i64 {}
impl LeaseId for Uuid {}

impl LeaseTable {
    fn touch(&self) -> &'static str {
        if self.updated_at {
            ", updated_at = now()"
        } else {
            ""
        }
    }

    /// The heartbeat: keeps the rows this owner is still working on ours for another lease.
    pub async fn extend<Id: LeaseId>(
        &self,
        pool: &PgPool,
        owner: Uuid,
        ids: &[Id],
        lease: Duration,
    ) -> sqlx::Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE {} SET lease_until = now() + make_interval(secs => $3)
             WHERE id = ANY($1) AND lease_owner = $2 AND status = '{}'",
            self.name, self.claimed
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(ids)
            .bind(owner)
            .bind(lease.as_secs_f64())
            .execute(pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Hands back rows this owner claimed but never tried (shutdown): due again now, no
    /// attempt counted.
    pub async fn release<Id: LeaseId>(
        &self,
        pool: &PgPool,
        owner: Uuid,
        ids: &[Id],
    ) -> sqlx::Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE {} SET status = {}, attempts = attempts - 1, lease_owner = NULL,
                 lease_until = NULL, next_attempt_at = now(){}
             WHERE id = ANY($1) AND lease_owner = $2 AND status = '{}'",
            self.name,
            self.released,
            self.touch(),
            self.claimed
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(ids)
            .bind(owner)
            .execute(pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Puts back up to `limit` rows whose process died, oldest lease first: those whose
    /// lease ran out, and at once those of a holder that stopped beating (see `holder`);
    /// returns their ids. They are due at once, at the head of the queue: they keep the due
    /// time they were claimed at (behind a backlog, "now" would make them wait it out). The
    /// lease owner is kept, so a late outcome from a runner that was merely slow still lands.
    pub async fn reclaim_expired<Id: LeaseId>(
        &self,
        conn: &mut PgConnection,
        limit: i64,
    ) -> sqlx::Result<Vec<Id>> {
        // Found through `waiting_in`, locked in the table itself: where they differ, only a
        // claim locks the mirror's rows first (see 0037), so a reclaim must not.
        let candidates = format!(
            "SELECT id FROM {waiting_in}
             WHERE status = '{claimed}' AND (lease_until < now() OR lease_owner IN ({dead}))
             ORDER BY lease_until LIMIT $1",
            waiting_in = self.waiting_in,
            claimed = self.claimed,
            dead = super::holder::DEAD_HOLDERS,
        );
        let pick = if self.waiting_in == self.name {
            format!("{candidates} FOR UPDATE SKIP LOCKED")
        } else {
            format!(
                "SELECT t.id FROM {name} t WHERE t.id IN ({candidates})
                   AND t.status = '{claimed}' FOR UPDATE OF t SKIP LOCKED",
                name = self.name,
                claimed = self.claimed,
            )
        };
        let sql = format!(
            "UPDATE {name} SET status = '{reclaimed}', lease_until = NULL,
                 next_attempt_at = least(next_attempt_at, now()){note}{touch}
             WHERE id IN ({pick})
             RETURNING id",
            name = self.name,
            reclaimed = self.reclaimed,
            note = self.reclaim_note,
            touch = self.touch(),
        );
        sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(conn)
            .await
    }

    /// Whether any row is claimed, or due: what `Runner::drain` waits out.
    pub async fn busy(&self, pool: &PgPool) -> sqlx::Result<bool> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} t WHERE t.status = '{}' OR ({}))",
            self.waiting_in, self.claimed, self.due
        );
        sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(pool).await
    }
}
