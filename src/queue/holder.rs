//! Lease holders: each process that claims queue work registers one row in `lease_holders`
//! and beats (renews it) every [`BEAT`]; the holder's id is the `lease_owner` of all its
//! leases. A holder that stopped beating is dead, and every queue's reclaim pass takes its
//! leases back at once instead of waiting out each lease:
//! - after [`DEAD_AFTER`] without a beat (any process that died and stayed down), or
//! - after [`SUCCESSOR_GRACE`] when a newer holder under the same identity (the same host
//!   and listening addresses: the process restarted) started and the old one has not beaten
//!   since. A live process beats every second, so an identity two processes happen to share
//!   never takes a live process's work.
//!
//! Leases still expire as before (`lease_until`): they cover holders that never registered
//! (a process of an older version during a rolling upgrade) and a holder whose row is gone.
//!
//! Two things keep a live process from being taken for dead, which would send the mail it is
//! sending a second time: the beat runs on a connection of its own, so a pool busy with
//! queue work never holds it up; and a process whose beats have not gone through for
//! [`CLAIM_FENCE`] (a database it cannot reach, a row lock, a stalled beat) claims nothing
//! more until one does, so by the time others may take its work ([`DEAD_AFTER`]) what it
//! claimed before is finished, as far as a send takes less than the difference.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often a holder renews its row.
pub const BEAT: Duration = Duration::from_secs(1);
/// A holder silent this long is dead: four missed beats, room for a slow pool under load.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);
/// A holder silent since its successor (same identity) started, this long ago, is dead.
pub const SUCCESSOR_GRACE: Duration = Duration::from_secs(2);
/// A holder whose last beat that went through is this old claims no more work: two beats
/// before others may find it dead.
pub const CLAIM_FENCE: Duration = Duration::from_secs(3);
/// A beat not answered in this long is given up, and the next one opens a new connection.
const BEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// SQL: the ids of dead holders, for `lease_owner IN (…)`. Constants only.
pub const DEAD_HOLDERS: &str = "SELECT h.id FROM lease_holders h
     WHERE h.beat_at < now() - interval '5 seconds'
        OR EXISTS (SELECT 1 FROM lease_holders n
                   WHERE n.identity = h.identity AND n.id <> h.id
                     AND n.started_at > h.beat_at AND n.started_at < now() - interval '2 seconds')";

/// A dead holder's row is deleted after this long: every lease it held has expired by then.
const FORGET_AFTER_SECS: f64 = 3600.0;

/// This process as a lease holder. Clones share the beat clock.
#[derive(Debug, Clone)]
pub struct Holder {
    id: Uuid,
    clock: Arc<BeatClock>,
}

/// When a beat last went through, in milliseconds since the clock was made.
#[derive(Debug)]
struct BeatClock {
    origin: Instant,
    last_ms: AtomicU64,
}

impl BeatClock {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn beat(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::AcqRel);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
        self.origin.elapsed().saturating_sub(last)
    }
}

impl Holder {
    /// Registers a new holder under `identity` (see [`identity`]).
    pub async fn register(pool: &PgPool, identity: Option<&str>) -> sqlx::Result<Self> {
        let id = Uuid::now_v7();
        sqlx::query("DELETE FROM lease_holders WHERE beat_at < now() - make_interval(secs => $1)")
            .bind(FORGET_AFTER_SECS)
            .execute(pool)
            .await?;
        sqlx::query("INSERT INTO lease_holders (id, identity) VALUES ($1, $2)")
            .bind(id)
            .bind(identity)
            .execute(pool)
            .await?;
        Ok(Self {
            id,
            clock: Arc::new(BeatClock::new()),
        })
    }

    /// The `lease_owner` of everything this process claims.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Whether this process may claim work: its last beat went through less than
    /// [`CLAIM_FENCE`] ago, so no other process takes it for dead meanwhile.
    pub fn may_claim(&self) -> bool {
        self.clock.silent_for() < CLAIM_FENCE
    }

    /// Beats every [`BEAT`] until `stop`, then deletes the row (a graceful stop has handed
    /// its leases back). A beat that finds the row gone (deleted after a long outage) puts it
    /// back.
    pub async fn run(self, pool: PgPool, stop: CancellationToken) {
        // Its own connection, out of the pool: queue work waiting for pool connections
        // never delays a beat.
        let mut conn: Option<PgConnection> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(BEAT) => {}
            }
            let beat = tokio::time::timeout(BEAT_TIMEOUT, self.beat(&pool, &mut conn)).await;
            match beat {
                Ok(Ok(())) => self.clock.beat(),
                Ok(Err(err)) => {
                    conn = None;
                    tracing::warn!(error = %err, "could not renew this process's lease holder row");
                }
                Err(_) => {
                    // Dropped mid-query; the next beat opens a fresh connection.
                    conn = None;
                    tracing::warn!(
                        silent_ms = self.clock.silent_for().as_millis() as u64,
                        "renewing this process's lease holder row is taking too long"
                    );
                }
            }
            if !self.may_claim() {
                tracing::warn!(
                    "no beat for {:?}: claiming no work until one goes through, so no other process takes this one for dead while it sends",
                    CLAIM_FENCE
                );
            }
        }
        if let Some(conn) = conn {
            let _ = conn.close().await;
        }
        if let Err(err) = sqlx::query("DELETE FROM lease_holders WHERE id = $1")
            .bind(self.id)
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %err, "could not remove this process's lease holder row");
        }
    }
}

impl Holder {
    async fn beat(&self, pool: &PgPool, conn: &mut Option<PgConnection>) -> sqlx::Result<()> {
        if conn.is_none() {
            *conn = Some(pool.acquire().await?.detach());
        }
        let conn = conn.as_mut().expect("just opened");
        sqlx::query(
            "INSERT INTO lease_holders (id) VALUES ($1)
             ON CONFLICT (id) DO UPDATE SET beat_at = now()",
        )
        .bind(self.id)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Who this process is across restarts: the host and the listening addresses configured
/// with a fixed port (bound ones: no two live processes on one host hold the same). `None`
/// when every listener is off or on port 0: such a process is only found dead by its
/// missed beats.
pub fn identity(listeners: &[(&str, SocketAddr)]) -> Option<String> {
    let fixed: Vec<String> = listeners
        .iter()
        .filter(|(_, addr)| addr.port() != 0)
        .map(|(name, addr)| format!("{name}={addr}"))
        .collect();
    if fixed.is_empty() {
        return None;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    Some(format!("{} {}", host.trim(), fixed.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_names_the_host_and_the_fixed_listeners_only() {
        let http: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let id = identity(&[("http", http), ("smtp", any)]).unwrap();
        assert!(id.ends_with(" http=127.0.0.1:8080"), "{id}");
        assert_eq!(identity(&[("http", any)]), None);
        assert_eq!(identity(&[]), None);
    }

    #[test]
    fn a_holder_claims_until_its_beats_stop_going_through() {
        let clock = BeatClock::new();
        assert!(clock.silent_for() < CLAIM_FENCE);
        clock.beat();
        assert!(clock.silent_for() < Duration::from_millis(100));
        const { assert!(CLAIM_FENCE.as_secs() + 2 <= DEAD_AFTER.as_secs()) };
    }

    #[test]
    fn the_sql_thresholds_are_the_constants() {
        assert!(DEAD_HOLDERS.contains(&format!("'{} seconds'", DEAD_AFTER.as_secs())));
        assert!(DEAD_HOLDERS.contains(&format!("'{} seconds'", SUCCESSOR_GRACE.as_secs())));
    }
}
