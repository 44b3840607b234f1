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
    /// Required unless `mx = true`.
    #[serde(default)]
    pub url: Option<SecretUrl>,
    /// Deliver straight to each recipient domain's mail servers (its MX records, RFC 5321
    /// §5.1) instead of through an upstream `url`.
    #[serde(default)]
    pub mx: bool,
    /// Source addresses for this relay's connections, each chosen by weight and greeting
    /// with its own EHLO name. Empty: the OS picks the source address.
    #[serde(default)]
    pub egress: Vec<EgressConfig>,
    /// Deliver to MX addresses in loopback, private, link-local or unspecified ranges
    /// (refused by default: a domain's DNS must not point mailgate at the inside network).
    #[serde(default)]
    pub allow_private_mx: bool,
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

/// One source address of a relay: connections from it greet with `helo`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// The local IP address connections are bound to; it must be one of this host's.
    pub addr: std::net::IpAddr,
    /// The EHLO name for connections from `addr`: publish it as the PTR of `addr`, with an
    /// A record back to `addr`.
    pub helo: String,
    /// Share of new connections from this address, against the relay's other egress
    /// addresses (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl RelayConfig {
    /// A relay at this URL with every other setting at its default.
    pub fn at(url: SecretUrl) -> Self {
        Self {
            url: Some(url),
            mx: false,
            egress: Vec::new(),
            allow_private_mx: false,
            pool_size: None,
            tls_insecure: false,
            max_rate_per_sec: None,
            burst: None,
            max_connections: None,
        }
    }

    /// A relay that delivers to each recipient domain's MX, with every other setting at its
    /// default.
    pub fn direct() -> Self {
        Self {
            url: None,
            mx: true,
            ..Self::at(SecretUrl::from(""))
        }
    }

    /// An egress address by weight, for a new connection; `None` lets the OS choose.
    pub fn pick_egress(&self) -> Option<&EgressConfig> {
        use rand::Rng;
        let total: u64 = self.egress.iter().map(|e| u64::from(e.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut pick = rand::rng().random_range(0..total);
        self.egress.iter().find(|e| {
            if pick < u64::from(e.weight) {
                true
            } else {
                pick -= u64::from(e.weight);
                false
            }
        })
    }

    pub(super) fn validate(&self, name: &str) -> anyhow::Result<()> {
        match (&self.url, self.mx) {
            (Some(_), true) => anyhow::bail!(
                "relays.{name}: set either `url` (an upstream relay) or `mx = true` (deliver to each domain's MX), not both"
            ),
            (None, false) => anyhow::bail!(
                "relays.{name} needs `url` (an upstream relay) or `mx = true` (deliver to each domain's MX)"
            ),
            _ => {}
        }
        if !self.mx && self.allow_private_mx {
            anyhow::bail!("relays.{name}.allow_private_mx needs relays.{name}.mx = true");
        }
        for (i, egress) in self.egress.iter().enumerate() {
            if egress.weight == 0 {
                anyhow::bail!("relays.{name}.egress[{i}].weight must be at least 1");
            }
            let helo = egress.helo.trim();
            if helo.is_empty()
                || helo.len() > 255
                || !helo
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                anyhow::bail!(
                    "relays.{name}.egress[{i}].helo must be a host name (letters, digits, `-` and `.`), e.g. \"mta1.example.com\""
                );
            }
        }
        if self.egress.len() > 1 {
            let mut addrs: Vec<_> = self.egress.iter().map(|e| e.addr).collect();
            addrs.sort();
            addrs.dedup();
            if addrs.len() != self.egress.len() {
                anyhow::bail!("relays.{name}.egress lists an address twice");
            }
        }
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
    /// A pool is either all direct (`mx = true`) relays or all upstream ones: failing over
    /// from a domain's own MX to an upstream (or back) is not something this round does.
    pub(super) fn validate_direct_pools(&self) -> anyhow::Result<()> {
        let relays = self.relay_map();
        for (pool, members) in &self.pools {
            let direct = members
                .iter()
                .filter(|m| relays.get(*m).is_some_and(|r| r.mx))
                .count();
            if direct > 0 && direct < members.len() {
                anyhow::bail!(
                    "pool `{pool}` mixes direct (`mx = true`) and upstream (`url`) relays; put them in separate pools"
                );
            }
            if direct > 1 {
                anyhow::bail!(
                    "pool `{pool}` lists more than one direct (`mx = true`) relay; a direct relay already tries every MX of a domain"
                );
            }
        }
        Ok(())
    }

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
