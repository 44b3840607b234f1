//! Open sessions kept between deliveries, per (egress address, MX host), each with the
//! connection slot it holds: the next message to the same host from the same source reuses
//! one, up to its site's `max_messages_per_connection` transactions.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::shaping::Pooled;

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

#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<HashMap<Key, Vec<(Pooled, Instant)>>>,
}

impl Pool {
    /// An idle session from `egress` to `host`, if a recent one is kept (not checked: RSET
    /// it), and the stale ones to close.
    pub(super) fn take(&self, egress: Option<IpAddr>, host: &str) -> (Option<Pooled>, Vec<Pooled>) {
        let mut idle = self.idle.lock().expect("not poisoned");
        let Some(sessions) = idle.get_mut(&(egress, host.to_ascii_lowercase())) else {
            return (None, Vec::new());
        };
        let (fresh, stale): (Vec<_>, Vec<_>) = sessions
            .drain(..)
            .partition(|(_, since)| since.elapsed() < MAX_IDLE_TIME);
        *sessions = fresh;
        (
            sessions.pop().map(|(s, _)| s),
            stale.into_iter().map(|(s, _)| s).collect(),
        )
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
        None
    }
}
