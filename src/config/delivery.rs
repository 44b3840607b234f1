//! `[delivery]`: the workers that relay queued mail upstream.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct DeliveryConfig {
    /// Deliveries in flight per process.
    pub concurrency: usize,
    /// Jobs claimed per round trip.
    pub claim_batch: i64,
    /// How often idle workers look for due work (other instances' mail, retries).
    pub poll_interval_ms: u64,
    /// A claimed job is someone else's after this long; must outlive one SMTP attempt.
    pub lease_secs: u64,
    /// Longest one delivery attempt may take: connect, TLS and the whole SMTP transaction.
    pub smtp_timeout_secs: u64,
    pub max_attempts: i32,
    /// A recipient still undelivered this long after acceptance is failed.
    pub max_age_secs: u64,
    /// First retry delay; doubles each attempt, with ±20 % jitter.
    pub retry_base_secs: f64,
    pub retry_max_secs: f64,
    /// How long SIGTERM waits for in-flight deliveries before releasing them.
    pub shutdown_grace_secs: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            claim_batch: 64,
            poll_interval_ms: 1000,
            lease_secs: 300,
            smtp_timeout_secs: 60,
            max_attempts: 12,
            max_age_secs: 3 * 24 * 3600,
            retry_base_secs: 30.0,
            retry_max_secs: 3600.0,
            shutdown_grace_secs: 20,
        }
    }
}

impl DeliveryConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
    pub fn smtp_timeout(&self) -> Duration {
        Duration::from_secs(self.smtp_timeout_secs)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        // A lease shorter than one attempt would let a second worker send the same job.
        if self.lease_secs < self.smtp_timeout_secs * 2 + 5 {
            bail!(
                "delivery.lease_secs ({}) must exceed twice delivery.smtp_timeout_secs ({}) plus 5 s",
                self.lease_secs,
                self.smtp_timeout_secs
            );
        }
        if self.concurrency == 0 || self.claim_batch <= 0 {
            bail!("delivery.concurrency and delivery.claim_batch must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn lease_must_outlive_timeout() {
        let mut c = Config::default();
        c.delivery.lease_secs = 10;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.webhooks.lease_secs = 20;
        assert!(c.validate().is_err());
    }
}
