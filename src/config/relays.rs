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
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Accept any certificate from this relay (self-signed test relays only).
    #[serde(default)]
    pub tls_insecure: bool,
}

fn default_pool_size() -> u32 {
    8
}

impl Config {
    /// All upstream relays by name, with `relay_url` as `default`.
    pub fn relay_map(&self) -> BTreeMap<String, RelayConfig> {
        let mut relays = self.relays.clone();
        if let Some(url) = &self.relay_url {
            relays.insert(
                DEFAULT_RELAY.to_string(),
                RelayConfig {
                    url: url.clone(),
                    pool_size: default_pool_size(),
                    tls_insecure: false,
                },
            );
        }
        relays
    }
}
