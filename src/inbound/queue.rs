//! The inbound queue (`inbound_messages`, written by `store::inbound`): the listener's side,
//! the [`Inbox`] that commits what it accepted, and the runner's side, [`InboundQueue`], how
//! its rows are claimed, completed and leased.

use std::{net::IpAddr, time::Duration};

use sqlx::PgPool;
use uuid::Uuid;

use super::{DomainRole, Domains, Processor};
use crate::{
    config::InboundConfig,
    queue::{LeaseTable, LeasedQueue, Runner, wake::Waker},
    store::inbound::{self as store, InboundJob, Outcome},
    tokens::TokenKey,
};

/// The listener's side: which recipients it takes, and committing what it accepted.
#[derive(Clone)]
pub struct Inbox {
    pool: PgPool,
    domains: Domains,
    key: TokenKey,
    /// `inbound.bounce_mailboxes`, lower case, with `postmaster`.
    mailboxes: Vec<String>,
    waker: Waker,
}

/// What the listener answers to one `RCPT TO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcpt {
    Accepted,
    /// Not one of mailgate's domains: taking it would be relaying.
    Foreign,
    /// At a bounce domain, but no return path mailgate gave out: a made-up or edited token,
    /// a recipient job retention deleted, another project's bounce domain, or a mailbox not
    /// in `inbound.bounce_mailboxes`.
    NoSuchReturnPath,
}

impl Inbox {
    pub fn new(
        pool: PgPool,
        domains: Domains,
        key: TokenKey,
        config: &InboundConfig,
        waker: Waker,
    ) -> Self {
        let mut mailboxes: Vec<String> = config
            .bounce_mailboxes
            .iter()
            .map(|m| m.to_ascii_lowercase())
            .collect();
        // RFC 5321 4.5.1: every domain that takes mail takes it for postmaster.
        mailboxes.push("postmaster".into());
        Self {
            pool,
            domains,
            key,
            mailboxes,
            waker,
        }
    }

    /// Whether mail to `local@domain` is ours to take. At a bounce domain only a return path
    /// mailgate gave out is (a valid token of a recipient job that still exists, at that
    /// job's bounce domain), or one of the configured mailboxes, so nothing else is stored.
    pub async fn recipient(&self, local: &str, domain: &str) -> sqlx::Result<Rcpt> {
        match self.domains.role(domain).await? {
            DomainRole::Foreign => Ok(Rcpt::Foreign),
            DomainRole::Inbound(_) => Ok(Rcpt::Accepted),
            DomainRole::Bounce => {
                let local = local.to_ascii_lowercase();
                if self.mailboxes.contains(&local) {
                    return Ok(Rcpt::Accepted);
                }
                let Some(id) = self.key.verp_recipient(&local) else {
                    return Ok(Rcpt::NoSuchReturnPath);
                };
                let Some(target) = store::verp_target(&self.pool, id).await? else {
                    return Ok(Rcpt::NoSuchReturnPath);
                };
                let ours = self
                    .domains
                    .is_return_path_of(target.project_id, target.bounce_domain.as_deref(), domain)
                    .await?;
                Ok(if ours {
                    Rcpt::Accepted
                } else {
                    Rcpt::NoSuchReturnPath
                })
            }
        }
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
    waiting_in: "inbound_messages",
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
