//! `[relays]` and `[pools]`: the upstream SMTP servers mail is relayed through.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Config, SecretUrl};

/// The relay name used when a send names none.
pub const DEFAULT_RELAY: &str = "default";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// `smtp://[user:pass@]host[:port][?tls=required|opportunistic|none]` or `smtps://…`.
    pub url: SecretUrl,
    /// Idle connections kept open to this relay, per process. Unset: `delivery.concurrency`,
    /// so a delivery that finishes never has to close its connection for want of room while
    /// the next one opens a new one (at 8 with 32 deliveries in flight, the connection churn
    /// cost a third of the sustained rate: bench/RESULTS.md, issue 17).
    #[serde(default)]
    pub pool_size: Option<u32>,
    /// Accept any certificate from this relay (self-signed test relays only).
    #[serde(default)]
    pub tls_insecure: bool,
    /// The most messages per second this relay takes, across every mailgate process (through
    /// Redis when `redis_url` is set, per process otherwise). Unset: as fast as it answers.
    #[serde(default)]
    pub max_rate_per_sec: Option<f64>,
    /// Messages that may go at once after a quiet spell, with `max_rate_per_sec` (default 1).
    #[serde(default)]
    pub burst: Option<u32>,
    /// The most connections open to this relay at once, across every mailgate process
    /// (through Redis when `redis_url` is set, per process otherwise).
    #[serde(default)]
    pub max_connections: Option<u32>,
}

impl RelayConfig {
    /// A relay at this URL with every other setting at its default.
    pub fn at(url: SecretUrl) -> Self {
        Self {
            url,
            pool_size: None,
            tls_insecure: false,
            max_rate_per_sec: None,
            burst: None,
            max_connections: None,
        }
    }

    pub(super) fn validate(&self, name: &str) -> anyhow::Result<()> {
        if let Some(rate) = self.max_rate_per_sec
            && !(rate.is_finite() && rate > 0.0)
        {
            anyhow::bail!("relays.{name}.max_rate_per_sec must be a positive number");
        }
        if self.burst == Some(0) || self.max_connections == Some(0) {
            anyhow::bail!(
                "relays.{name}.burst and relays.{name}.max_connections must be at least 1"
            );
        }
        if self.burst.is_some() && self.max_rate_per_sec.is_none() {
            anyhow::bail!("relays.{name}.burst needs relays.{name}.max_rate_per_sec");
        }
        Ok(())
    }
}

impl Config {
    /// All upstream relays by name, with `relay_url` as `default`.
    pub fn relay_map(&self) -> BTreeMap<String, RelayConfig> {
        let mut relays = self.relays.clone();
        if let Some(url) = &self.relay_url {
            relays.insert(DEFAULT_RELAY.to_string(), RelayConfig::at(url.clone()));
        }
        for relay in relays.values_mut() {
            relay.pool_size.get_or_insert(
                self.delivery
                    .runner
                    .concurrency
                    .try_into()
                    .unwrap_or(u32::MAX),
            );
        }
        relays
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unset, a relay keeps as many idle connections as deliveries run at once.
    #[test]
    fn relay_pool_defaults_to_the_delivery_concurrency() {
        let mut c = Config {
            relay_url: Some("smtp://mx.example.com".into()),
            ..Config::default()
        };
        c.delivery.runner.concurrency = 48;
        c.relays.insert(
            "eu".into(),
            RelayConfig {
                pool_size: Some(2),
                ..RelayConfig::at("smtp://mx.example.eu".into())
            },
        );
        let map = c.relay_map();
        assert_eq!(map[DEFAULT_RELAY].pool_size, Some(48));
        assert_eq!(map["eu"].pool_size, Some(2));
    }
}
