//! `[delivery]`: the workers that relay queued mail upstream.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Deliveries in flight per process.
    pub concurrency: usize,
    /// Jobs claimed per round trip.
    pub claim_batch: i64,
    /// How often idle workers look for due work (other instances' mail, retries).
    pub poll_interval_ms: u64,
    /// A claimed job is someone else's after this long unless renewed; a heartbeat renews it
    /// every third of it while the attempt runs, so it may be shorter than one attempt.
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
            lease_secs: 30,
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
        super::check_lease("delivery", self.lease_secs)?;
        if self.concurrency == 0 || self.claim_batch <= 0 {
            bail!("delivery.concurrency and delivery.claim_batch must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    /// Leases are renewed every third while work runs, so they need not outlive a timeout,
    /// only leave the heartbeat room to run.
    #[test]
    fn lease_must_be_at_least_three_seconds() {
        let mut c = Config::default();
        assert_eq!((c.delivery.lease_secs, c.webhooks.lease_secs), (30, 30));
        c.delivery.lease_secs = 3;
        c.webhooks.lease_secs = 3;
        c.validate().unwrap();
        c.delivery.lease_secs = 2;
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("delivery.lease_secs (2) must be at least 3"),
            "{err}"
        );
        let mut c = Config::default();
        c.webhooks.lease_secs = 0;
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("webhooks.lease_secs (0) must be at least 3"),
            "{err}"
        );
    }
}
