//! `[delivery]`: the workers that relay queued mail upstream.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RunnerSettings;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Deliveries in flight per process, claims, leases and shutdown.
    #[serde(flatten)]
    pub runner: RunnerSettings,
    /// Longest one delivery attempt may take: connect, TLS and the whole SMTP transaction.
    pub smtp_timeout_secs: u64,
    pub max_attempts: i32,
    /// A recipient still undelivered this long after acceptance is failed.
    pub max_age_secs: u64,
    /// First retry delay; doubles each attempt, with ±20 % jitter.
    pub retry_base_secs: f64,
    pub retry_max_secs: f64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            runner: RunnerSettings {
                concurrency: 32,
                claim_batch: Some(64),
                poll_interval_ms: 1000,
                lease_secs: 30,
                shutdown_grace_secs: 20,
            },
            smtp_timeout_secs: 60,
            max_attempts: 12,
            max_age_secs: 3 * 24 * 3600,
            retry_base_secs: 30.0,
            retry_max_secs: 3600.0,
        }
    }
}

impl DeliveryConfig {
    pub fn smtp_timeout(&self) -> Duration {
        Duration::from_secs(self.smtp_timeout_secs)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        self.runner.validate("delivery")
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
        assert_eq!(
            (c.delivery.runner.lease_secs, c.webhooks.runner.lease_secs),
            (30, 30)
        );
        c.delivery.runner.lease_secs = 3;
        c.webhooks.runner.lease_secs = 3;
        c.validate().unwrap();
        c.delivery.runner.lease_secs = 2;
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("delivery.lease_secs (2) must be at least 3"),
            "{err}"
        );
        let mut c = Config::default();
        c.webhooks.runner.lease_secs = 0;
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("webhooks.lease_secs (0) must be at least 3"),
            "{err}"
        );
    }
}
