//! The webhook delivery queue (`webhook_deliveries`, written by `store::webhooks`) as the
//! queue runner works it: its claims (fair across endpoints, each endpoint capped), its
//! outcomes, and how its rows lease.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    config::WebhooksConfig,
    queue::{LeaseTable, LeasedQueue},
    store::webhooks::{self as store, DeliveryJob, Outcome},
};

/// `webhook_deliveries` as a lease table. A delivery whose runner died goes again at once
/// (the receiver may or may not have it: at least once), and its error says why; only
/// deliveries to enabled endpoints are due.
pub const DELIVERIES: LeaseTable = LeaseTable {
    name: "webhook_deliveries",
    claimed: "sending",
    released: "'pending'",
    reclaimed: "pending",
    waiting_in: "webhook_deliveries",
    reclaim_note: ", error = 'lease expired: the worker stopped during the request; retrying'",
    due: "t.status = 'pending' AND t.next_attempt_at <= now()
          AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = t.endpoint_id AND w.enabled)",
    updated_at: true,
};

pub struct WebhookQueue {
    pool: PgPool,
    /// Requests in flight to one endpoint, so a slow endpoint cannot take every slot.
    per_endpoint: i64,
    /// An endpoint failing without a success this long is disabled.
    disable_after_secs: f64,
}

impl WebhookQueue {
    pub fn new(pool: PgPool, config: &WebhooksConfig) -> Self {
        Self {
            pool,
            per_endpoint: config.per_endpoint_concurrency,
            disable_after_secs: config.disable_after_secs as f64,
        }
    }
}

impl LeasedQueue for WebhookQueue {
    type Id = Uuid;
    type Job = DeliveryJob;
    type Outcome = Outcome;
    const NAME: &'static str = "webhooks";
    const TABLE: &'static LeaseTable = &DELIVERIES;

    fn pool(&self) -> &PgPool {
        &self.pool
    }
    fn job_id(job: &DeliveryJob) -> Uuid {
        job.id
    }
    fn outcome_id(outcome: &Outcome) -> Uuid {
        outcome.delivery_id
    }
    async fn claim(
        &self,
        owner: Uuid,
        limit: i64,
        lease: Duration,
    ) -> sqlx::Result<Vec<DeliveryJob>> {
        store::claim(
            &self.pool,
            owner,
            limit,
            self.per_endpoint,
            lease.as_secs_f64(),
        )
        .await
    }
    /// One transaction per attempt: each may change its endpoint's health. Recording again
    /// after a partial failure is harmless, as the fence refuses what was already recorded.
    async fn complete(&self, owner: Uuid, outcomes: &[Outcome]) -> sqlx::Result<()> {
        for outcome in outcomes {
            if !store::record(&self.pool, owner, outcome, self.disable_after_secs).await? {
                tracing::debug!(delivery = %outcome.delivery_id, "lease lost; outcome dropped");
            }
        }
        Ok(())
    }
}
