//! Open sessions kept between deliveries, per (egress address, MX host), each with the
//! connection slot it holds: the next message to the same host from the same source reuses
//! one, up to its site's `max_messages_per_connection` transactions. A session put back wakes
//! the deliveries waiting for a capped site's connection (`returned`), and a sweep closes the
//! sessions idle too long (`sweep`).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::sync::{Notify, futures::Notified};

use super::shaping::Pooled;
use crate::ratelimit::pace::keeps_slot;

/// Transactions one connection carries before it is closed, unless the site's shaping says
/// otherwise: long-lived connections to one MX are cheap for both sides, but some receivers
/// count messages per connection.
pub const MAX_DELIVERIES: u32 = 100;
/// Idle sessions kept per (egress, MX host).
const MAX_IDLE: usize = 8;
/// An idle session older than this is closed rather than reused: receivers drop idle
/// clients after a while (RFC 5321 §4.5.3.2.7 lets them after 5 minutes), sometimes silently.
const MAX_IDLE_TIME: Duration = Duration::from_secs(60);

type Key = (Option<IpAddr>, String);

/// Takes the sessions no longer [`fresh`] out of `sessions`.
fn drain_stale(sessions: &mut Vec<(Pooled, Instant)>) -> Vec<Pooled> {
    sessions
        .extract_if(.., |(pooled, since)| !fresh(pooled, *since))
        .map(|(pooled, _)| pooled)
        .collect()
}

#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<HashMap<Key, Vec<(Pooled, Instant)>>>,
    /// Woken whenever a session is put back.
    returned: Notify,
}

/// Whether a session idle since `since` may still be reused.
fn fresh(pooled: &Pooled, since: Instant) -> bool {
    match pooled.slot {
        None => since.elapsed() < MAX_IDLE_TIME,
        Some(_) => keeps_slot(since.elapsed(), pooled.renewed),
    }
}

impl Pool {
    /// An idle session from `egress` to `host`, if a recent one is kept (not checked: RSET
    /// it), and the stale ones to close.
    pub(super) fn take(&self, egress: Option<IpAddr>, host: &str) -> (Option<Pooled>, Vec<Pooled>) {
        let mut idle = self.idle.lock().expect("not poisoned");
        let Some(sessions) = idle.get_mut(&(egress, host.to_ascii_lowercase())) else {
            return (None, Vec::new());
        };
        let stale = drain_stale(sessions);
        (sessions.pop().map(|(s, _)| s), stale)
    }

    /// Keeps `session` for the next delivery to `host`, or hands it back to be closed when it
    /// is spent (`max_deliveries` transactions) or there are enough idle ones.
    pub(super) fn put(
        &self,
        egress: Option<IpAddr>,
        host: &str,
        session: Pooled,
        max_deliveries: u32,
    ) -> Option<Pooled> {
        if !session.session.is_usable() || session.session.deliveries >= max_deliveries {
            return Some(session);
        }
        let mut idle = self.idle.lock().expect("not poisoned");
        let sessions = idle.entry((egress, host.to_ascii_lowercase())).or_default();
        if sessions.len() >= MAX_IDLE {
            return Some(session);
        }
        sessions.push((session, Instant::now()));
        drop(idle);
        self.returned.notify_waiters();
        None
    }

    /// Resolves at the next [`Pool::put`] of a session; enable it before looking in the pool,
    /// or a session put back in between is missed.
    pub(super) fn returned(&self) -> Notified<'_> {
        self.returned.notified()
    }

    /// Takes out every session idle too long, to be closed.
    pub(super) fn sweep(&self) -> Vec<Pooled> {
        let mut idle = self.idle.lock().expect("not poisoned");
        let mut stale = Vec::new();
        idle.retain(|_, sessions| {
            stale.extend(drain_stale(sessions));
            !sessions.is_empty()
        });
        stale
    }
}
