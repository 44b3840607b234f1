//! Every configured relay and pool by name: which relays a send tries, in order, and what
//! `serve` and `/v1/relays` say about them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use super::upstream::Relay;
use crate::{config::RelayConfig, ratelimit::pace::RelayPacer};

/// Every configured relay by name. Empty means sandbox delivery.
pub struct Relays {
    relays: BTreeMap<String, Relay>,
    pools: BTreeMap<String, Vec<String>>,
}

impl Relays {
    pub fn build(
        configs: &BTreeMap<String, RelayConfig>,
        pools: &BTreeMap<String, Vec<String>>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut relays = BTreeMap::new();
        for (name, config) in configs {
            relays.insert(name.clone(), Relay::build(name, config, timeout)?);
        }
        for (pool, members) in pools {
            if members.is_empty() {
                anyhow::bail!("pool `{pool}` lists no relays");
            }
            if let Some(missing) = members.iter().find(|m| !relays.contains_key(*m)) {
                anyhow::bail!("pool `{pool}` names relay `{missing}`, which is not configured");
            }
        }
        Ok(Self {
            relays,
            pools: pools.clone(),
        })
    }

    /// Paces every relay through this pacer (shared through Redis when it has a backend);
    /// without it each relay paces within this process.
    pub fn with_pacer(mut self, pacer: Arc<RelayPacer>) -> Self {
        for relay in self.relays.values_mut() {
            relay.pacer = pacer.clone();
        }
        self
    }

    /// The relays to try, in order, for a pool or relay name, or the default: pool
    /// `default`, else relay `default`, else the first relay.
    pub fn chain(&self, name: Option<&str>) -> Option<Vec<&Relay>> {
        let name = match name {
            Some(n) => n,
            None if self.pools.contains_key(crate::config::DEFAULT_RELAY) => {
                crate::config::DEFAULT_RELAY
            }
            None => return self.pick(None).map(|r| vec![r]),
        };
        match self.pools.get(name) {
            Some(members) => Some(members.iter().filter_map(|m| self.relays.get(m)).collect()),
            None => self.relays.get(name).map(|r| vec![r]),
        }
    }

    /// Pools that list this relay.
    pub fn pools_of(&self, relay: &str) -> Vec<String> {
        self.pools
            .iter()
            .filter(|(_, members)| members.iter().any(|m| m == relay))
            .map(|(p, _)| p.clone())
            .collect()
    }

    pub fn is_sandbox(&self) -> bool {
        self.relays.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.relays.contains_key(name) || self.pools.contains_key(name)
    }

    /// The named relay, or the default (`default`, else the first configured).
    pub fn pick(&self, name: Option<&str>) -> Option<&Relay> {
        match name {
            Some(n) => self.relays.get(n),
            None => self
                .relays
                .get(crate::config::DEFAULT_RELAY)
                .or_else(|| self.relays.values().next()),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Relay> {
        self.relays.values()
    }

    pub fn describe(&self) -> String {
        if self.relays.is_empty() {
            return "sandbox (no relay configured; nothing leaves this machine)".into();
        }
        self.relays
            .values()
            .map(|r| format!("{}={}", r.name, r.host))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
