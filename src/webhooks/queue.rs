//! The webhook delivery queue (`webhook_deliveries`, written by `store::webhooks`) as the
//! queue runner works it.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    config::WebhooksConfig,
    queue::{self, LeasedQueue, RunnerConfig},
    store::webhooks::{self as store, Attempt, DeliveryJob},
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

/// How the runner works the webhook queue, from `[webhooks]`.
pub fn runner_config(config: &WebhooksConfig) -> RunnerConfig {
    RunnerConfig {
        concurrency: config.concurrency,
        // Claims stay small: at most the free slots, each endpoint capped.
        claim_batch: config.concurrency as i64,
        lease: Duration::from_secs(config.lease_secs),
        poll_interval: config.poll_interval(),
        shutdown_grace: config.shutdown_grace(),
    }
}

impl LeasedQueue for WebhookQueue {
    type Id = Uuid;
    type Job = DeliveryJob;
    type Outcome = Attempt;
    const NAME: &'static str = "webhooks";

    fn job_id(job: &DeliveryJob) -> Uuid {
        job.id
    }
    fn outcome_id(outcome: &Attempt) -> Uuid {
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
    async fn complete(&self, owner: Uuid, outcomes: &[Attempt]) -> sqlx::Result<()> {
        for attempt in outcomes {
            if !store::record(&self.pool, owner, attempt, self.disable_after_secs).await? {
                tracing::debug!(delivery = %attempt.delivery_id, "lease lost; outcome dropped");
            }
        }
        Ok(())
    }
    async fn extend(&self, owner: Uuid, ids: &[Uuid], lease: Duration) -> sqlx::Result<u64> {
        queue::extend_leases(
            &self.pool,
            queue::LeasedTable::WebhookDeliveries,
            owner,
            ids,
            lease,
        )
        .await
    }
    async fn release(&self, owner: Uuid, ids: &[Uuid]) -> sqlx::Result<u64> {
        store::release(&self.pool, owner, ids).await
    }
    async fn reclaim_expired(&self, limit: i64) -> sqlx::Result<u64> {
        store::reclaim_expired(&self.pool, limit).await
    }
    async fn busy(&self) -> sqlx::Result<bool> {
        store::busy(&self.pool).await
    }
}
