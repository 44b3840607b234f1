//! Waking idle runners when work arrives, without a NOTIFY per job.
//!
//! Postgres serialises commits that issued a NOTIFY, so no commit path notifies. A commit that
//! made work due wakes this process's runner directly and raises a flag; one task turns each
//! queue's flag into at most one `pg_notify` per interval for the other instances, and turns
//! theirs into local wake-ups. Everyone also polls, so a lost wake-up only costs latency.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The NOTIFY channel of the mail queue.
pub const MAIL_CHANNEL: &str = "mailgate_queue";
/// The NOTIFY channel of the webhook queue.
pub const WEBHOOK_CHANNEL: &str = "mailgate_webhooks";
/// The NOTIFY channel of the inbound queue (mail the inbound listener accepted).
pub const INBOUND_CHANNEL: &str = "mailgate_inbound";
const COALESCE: Duration = Duration::from_millis(50);

/// The wake-up of one queue's runner.
#[derive(Clone)]
pub struct Waker {
    channel: &'static str,
    local: Arc<Notify>,
    pending: Arc<AtomicBool>,
}

impl Waker {
    fn new(channel: &'static str) -> Self {
        Self {
            channel,
            local: Arc::default(),
            pending: Arc::default(),
        }
    }

    /// Called after a commit that made work due.
    pub fn wake(&self) {
        self.local.notify_one();
        self.pending.store(true, Ordering::Release);
    }

    /// Resolves when work may be due in this process.
    pub async fn notified(&self) {
        self.local.notified().await
    }
}

/// The wake-ups of every queue of one process.
#[derive(Clone)]
pub struct Wakers {
    pub mail: Waker,
    pub webhooks: Waker,
    pub inbound: Waker,
}

impl Default for Wakers {
    fn default() -> Self {
        Self {
            mail: Waker::new(MAIL_CHANNEL),
            webhooks: Waker::new(WEBHOOK_CHANNEL),
            inbound: Waker::new(INBOUND_CHANNEL),
        }
    }
}

impl Wakers {
    fn all(&self) -> [&Waker; 3] {
        [&self.mail, &self.webhooks, &self.inbound]
    }

    /// Forwards local wake-ups to other instances and theirs to us, until cancelled: one
    /// LISTEN connection for every queue.
    pub async fn run(self, pool: PgPool, cancel: CancellationToken) {
        let channels: Vec<&str> = self.all().iter().map(|w| w.channel).collect();
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen_all(channels).await {
                Ok(()) => Some(l),
                Err(err) => {
                    tracing::warn!(error = %err, "LISTEN failed; relying on polling");
                    None
                }
            },
            Err(err) => {
                tracing::warn!(error = %err, "no LISTEN connection; relying on polling");
                None
            }
        };
        let mut tick = tokio::time::interval(COALESCE);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {
                    for waker in self.all() {
                        if waker.pending.swap(false, Ordering::AcqRel)
                            && let Err(err) = sqlx::query("SELECT pg_notify($1, '')").bind(waker.channel).execute(&pool).await
                        {
                            tracing::debug!(error = %err, "pg_notify failed; other instances will poll");
                        }
                    }
                }
                note = async { listener.as_mut().expect("guarded").try_recv().await }, if listener.is_some() => {
                    match note {
                        Ok(Some(note)) => {
                            for waker in self.all() {
                                if waker.channel == note.channel() {
                                    waker.local.notify_one();
                                }
                            }
                        }
                        // The listener reconnects by itself; polling covers the gap.
                        Ok(None) => {}
                        Err(err) => {
                            tracing::debug!(error = %err, "LISTEN connection lost");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        }
    }
}
