//! Every configured relay and pool by name: which relays a send tries, in order, and what
//! `serve` and `/v1/relays` say about them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use sqlx::PgPool;

use super::upstream::Relay;
use crate::{
    config::{DnsConfig, RelayConfig, TlsPolicyConfig},
    delivery::{
        direct::Direct,
        dns::Dns,
        tls_policy::{TlsPolicies, tlsrpt::SessionLog},
    },
    ratelimit::pace::RelayPacer,
};

/// Every configured relay by name. Empty means sandbox delivery.
pub struct Relays {
    relays: BTreeMap<String, Relay>,
    /// Relays that deliver to each domain's MX (`mx = true`), sharing one resolver.
    direct: BTreeMap<String, Direct>,
    pools: BTreeMap<String, Vec<String>>,
}

impl Relays {
    pub fn build(
        configs: &BTreeMap<String, RelayConfig>,
        pools: &BTreeMap<String, Vec<String>>,
        dns: &DnsConfig,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut relays = BTreeMap::new();
        let mut direct = BTreeMap::new();
        let mut resolver = None;
        for (name, config) in configs {
            if config.mx {
                let resolver = match &resolver {
                    Some(r) => Arc::clone(r),
                    None => resolver.insert(Dns::build(dns)?).clone(),
                };
                direct.insert(
                    name.clone(),
                    Direct::build(name, config, resolver, timeout)?,
                );
            } else {
                relays.insert(name.clone(), Relay::build(name, config, timeout)?);
            }
        }
        for (pool, members) in pools {
            if members.is_empty() {
                anyhow::bail!("pool `{pool}` lists no relays");
            }
            if let Some(missing) = members
                .iter()
                .find(|m| !relays.contains_key(*m) && !direct.contains_key(*m))
            {
                anyhow::bail!("pool `{pool}` names relay `{missing}`, which is not configured");
            }
        }
        Ok(Self {
            relays,
            direct,
            pools: pools.clone(),
        })
    }

    /// The direct relay a send goes through, when its pool or relay name (or the default)
    /// is one: `Config::validate` keeps direct relays out of pools with upstream ones.
    pub fn direct(&self, name: Option<&str>) -> Option<&Direct> {
        let name = match name {
            Some(n) => n,
            None if self.pools.contains_key(crate::config::DEFAULT_RELAY) => {
                crate::config::DEFAULT_RELAY
            }
            None if self.relays.contains_key(crate::config::DEFAULT_RELAY) => return None,
            None => {
                return self.direct.get(crate::config::DEFAULT_RELAY).or_else(|| {
                    self.relays
                        .is_empty()
                        .then(|| self.direct.values().next())
                        .flatten()
                });
            }
        };
        match self.pools.get(name) {
            Some(members) => members.first().and_then(|m| self.direct.get(m)),
            None => self.direct.get(name),
        }
    }

    /// Direct relays honour recipient domains' TLS policies (`[tls_policy]`), cached in
    /// `pool`; each policy fetch takes at most `timeout`. Sessions are counted in `sessions`
    /// for TLS-RPT when given.
    pub fn with_tls_policies(
        mut self,
        config: &TlsPolicyConfig,
        pool: PgPool,
        timeout: Duration,
        sessions: Option<Arc<SessionLog>>,
    ) -> anyhow::Result<Self> {
        let Some(dns) = self.direct.values().next().map(Direct::dns) else {
            return Ok(self);
        };
        let policies =
            Arc::new(TlsPolicies::new(config, pool, dns, timeout)?.with_session_log(sessions));
        for direct in self.direct.values_mut() {
            direct.with_tls_policies(policies.clone());
        }
        Ok(self)
    }

    /// Paces every relay through this pacer (shared through Redis when it has a backend);
    /// without it each relay paces within this process.
    pub fn with_pacer(mut self, pacer: Arc<RelayPacer>) -> Self {
        for relay in self.relays.values_mut() {
            relay.pacer = pacer.clone();
        }
        for direct in self.direct.values_mut() {
            direct.with_pacer(pacer.clone());
        }
        self
    }

    /// Shapes direct delivery per destination site with these entries (the built-in ones
    /// without it).
    pub fn with_shaping(mut self, shaping: Arc<crate::delivery::direct::Shaping>) -> Self {
        for direct in self.direct.values_mut() {
            direct.with_shaping(shaping.clone());
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
        self.relays.is_empty() && self.direct.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.relays.contains_key(name)
            || self.direct.contains_key(name)
            || self.pools.contains_key(name)
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

    /// Every direct (`mx = true`) relay.
    pub fn all_direct(&self) -> impl Iterator<Item = &Direct> {
        self.direct.values()
    }

    pub fn describe(&self) -> String {
        if self.is_sandbox() {
            return "sandbox (no relay configured; nothing leaves this machine)".into();
        }
        self.relays
            .values()
            .map(|r| format!("{}={}", r.name, r.host))
            .chain(
                self.direct
                    .values()
                    .map(|d| format!("{}={}", d.name, d.describe())),
            )
            .collect::<Vec<_>>()
            .join(", ")
    }
}
