//! `[webhooks]`: the worker that delivers signed events to customers' endpoints.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::RunnerSettings;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Run the webhook delivery workers in `serve` (only where `workers_enabled` too).
    pub workers_enabled: bool,
    /// Webhook requests in flight per process (its own pool, apart from mail delivery),
    /// claims, leases and shutdown.
    #[serde(flatten)]
    pub runner: RunnerSettings,
    /// Requests in flight to one endpoint, so a slow endpoint cannot take every slot.
    pub per_endpoint_concurrency: i64,
    /// Longest one request may take: resolve, connect, TLS, send, read the answer.
    pub timeout_secs: f64,
    /// Delay before each retry (the first entry follows the first failure); its length is
    /// the number of retries. Each delay gets ±`retry_jitter` (a fraction).
    pub retry_schedule_secs: Vec<f64>,
    pub retry_jitter: f64,
    /// Cap on a receiver's `Retry-After`.
    pub max_retry_after_secs: f64,
    /// An endpoint failing without a single success for this long is disabled.
    pub disable_after_secs: u64,
    /// After a secret rotation the old secret also signs for this long.
    pub rotation_overlap_secs: u64,
    /// Allow targets on loopback, private, link-local and other non-public addresses
    /// (development and tests only: it opens the door to SSRF).
    pub allow_private_targets: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            workers_enabled: true,
            // Claims stay small: at most the free slots, each endpoint capped.
            runner: RunnerSettings {
                concurrency: 32,
                claim_batch: None,
                poll_interval_ms: 1000,
                lease_secs: 30,
                shutdown_grace_secs: 20,
            },
            per_endpoint_concurrency: 4,
            timeout_secs: 15.0,
            retry_schedule_secs: vec![5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
            retry_jitter: 0.2,
            max_retry_after_secs: 36000.0,
            disable_after_secs: 3 * 24 * 3600,
            rotation_overlap_secs: 24 * 3600,
            allow_private_targets: false,
        }
    }
}

impl WebhooksConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            bail!("webhooks.timeout_secs must be positive");
        }
        self.runner.validate("webhooks")?;
        if self.per_endpoint_concurrency <= 0 {
            bail!("webhooks.per_endpoint_concurrency must be positive");
        }
        if self
            .retry_schedule_secs
            .iter()
            .chain([&self.retry_jitter, &self.max_retry_after_secs])
            .any(|s| !s.is_finite() || *s < 0.0)
            || self.retry_jitter >= 1.0
        {
            bail!(
                "webhooks.retry_schedule_secs, retry_jitter (below 1) and max_retry_after_secs must be non-negative numbers"
            );
        }
        Ok(())
    }
}
