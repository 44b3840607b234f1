//! The sweep of a pool's idle connections: once a second, for as long as the pool lives, it
//! takes out the ones idle too long and closes them, so a process that has no more mail for a
//! destination does not keep its connections (and their slots) open.

use std::{sync::Weak, time::Duration};

/// How often pools close their connections idle too long.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Runs `sweep` on `pool` every [`SWEEP_EVERY`] until the pool is dropped (a reload, or the
/// process stopping: its connections go with it).
pub(crate) fn spawn<P: Send + Sync + 'static>(pool: Weak<P>, sweep: impl Fn(&P) + Send + 'static) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(pool) = pool.upgrade() else { return };
            sweep(&pool);
        }
    });
}
