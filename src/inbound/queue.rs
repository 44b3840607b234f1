//! The inbound queue (`inbound_messages`, written by `store::inbound`): the listener's side,
//! the [`Inbox`] that commits what it accepted, and the runner's side, [`InboundQueue`], how
//! its rows are claimed, completed and leased.

use std::{net::IpAddr, time::Duration};

use sqlx::PgPool;
use uuid::Uuid;

use super::{DomainRole, Domains, Processor};
use crate::{
    queue::{LeaseTable, LeasedQueue, Runner, wake::Waker},
    store::inbound::{self as store, InboundJob, Outcome},
};

/// The listener's side: which recipients it takes, and committing what it accepted.
#[derive(Clone)]
pub struct Inbox {
    pool: PgPool,
    domains: Domains,
    waker: Waker,
}

impl Inbox {
    pub fn new(pool: PgPool, domains: Domains, waker: Waker) -> Self {
        Self {
            pool,
            domains,
            waker,
        }
    }

    /// Whether mail to `domain` is ours to take.
    pub async fn accepts(&self, domain: &str) -> sqlx::Result<bool> {
        Ok(self.domains.role(domain).await? != DomainRole::Foreign)
    }

    /// Commits one message; the listener answers 250 only after this returns.
    pub async fn store(
        &self,
        peer: IpAddr,
        mail_from: &str,
        rcpt_to: &[String],
        raw: &[u8],
    ) -> sqlx::Result<Uuid> {
        let id = Uuid::now_v7();
        store::insert(&self.pool, id, &peer.to_string(), mail_from, rcpt_to, raw).await?;
        metrics::counter!("mailgate_inbound_accepted_total").increment(1);
        self.waker.wake();
        Ok(id)
    }
}

/// The inbound queue as the runner works it. Processing records events and webhook
/// deliveries, so it wakes the webhook runner.
pub struct InboundQueue {
    pool: PgPool,
    webhooks: Waker,
}

impl InboundQueue {
    pub fn new(pool: PgPool, webhooks: Waker) -> Self {
        Self { pool, webhooks }
    }
}

pub type InboundRunner = Runner<InboundQueue, Processor>;

/// `inbound_messages` as a lease table. Processing changes nothing outside its own
/// transaction, so a message whose processor died is simply processed again.
pub const INBOUND_MESSAGES: LeaseTable = LeaseTable {
    name: "inbound_messages",
    claimed: "processing",
    released: "'pending'",
    reclaimed: "pending",
    reclaim_note: "",
    due: "t.status = 'pending' AND t.next_attempt_at <= now()",
    updated_at: false,
};

impl LeasedQueue for InboundQueue {
    type Id = Uuid;
    type Job = InboundJob;
    type Outcome = Outcome;
    const NAME: &'static str = "inbound";
    const TABLE: &'static LeaseTable = &INBOUND_MESSAGES;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn job_id(job: &InboundJob) -> Uuid {
        job.id
    }
    fn outcome_id(outcome: &Outcome) -> Uuid {
        outcome.id
    }
    async fn claim(
        &self,
        owner: Uuid,
        limit: i64,
        lease: Duration,
    ) -> sqlx::Result<Vec<InboundJob>> {
        store::claim(&self.pool, owner, limit, lease.as_secs_f64()).await
    }
    async fn complete(&self, owner: Uuid, outcomes: &[Outcome]) -> sqlx::Result<()> {
        let mut recorded = false;
        for p in outcomes {
            if store::complete(&self.pool, owner, p).await? {
                recorded |= p.retry_at.is_none() && !p.effects.is_empty();
                if p.retry_at.is_none() {
                    metrics::counter!("mailgate_inbound_processed_total", "kind" => p.kind)
                        .increment(1);
                }
            } else {
                tracing::debug!(inbound = %p.id, "lease lost; outcome dropped");
            }
        }
        if recorded {
            self.webhooks.wake();
        }
        Ok(())
    }
}
