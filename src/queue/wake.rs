//! Waking idle workers when mail arrives, without a NOTIFY per message.
//!
//! Postgres serialises commits that issued a NOTIFY, so the accept path never notifies.
//! It wakes this process's workers directly and raises a flag; a small task turns the flag
//! into at most one `pg_notify` per interval for the other instances. Everyone also polls.

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

pub const CHANNEL: &str = "mailgate_queue";
const COALESCE: Duration = Duration::from_millis(50);

#[derive(Clone, Default)]
pub struct Waker {
    local: Arc<Notify>,
    pending: Arc<AtomicBool>,
}

impl Waker {
    /// Called after a commit that made work due.
    pub fn wake(&self) {
        self.local.notify_one();
        self.pending.store(true, Ordering::Release);
    }

    /// Resolves when work may be due in this process.
    pub async fn notified(&self) {
        self.local.notified().await
    }

    /// Forwards local wake-ups to other instances and theirs to us, until cancelled.
    pub async fn run(self, pool: PgPool, cancel: CancellationToken) {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(CHANNEL).await {
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
                    if self.pending.swap(false, Ordering::AcqRel)
                        && let Err(err) = sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&pool).await
                    {
                        tracing::debug!(error = %err, "pg_notify failed; other instances will poll");
                    }
                }
                note = async { listener.as_mut().expect("guarded").try_recv().await }, if listener.is_some() => {
                    match note {
                        Ok(Some(_)) => self.local.notify_one(),
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
