//! `[domains]`: sending domains (`/v1/domains`), the records mailgate asks them to publish,
//! how often it checks them, and whether mail may be sent from a domain that is not verified.

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainsConfig {
    /// Refuse mail whose From domain is not a verified domain of the sending project: `403
    /// domain_not_verified` over HTTP, `550 5.7.1` over SMTP, never queued.
    pub require_verified: bool,
    /// What the SPF record includes for upstream relays, e.g. `_spf.relay.example` (several
    /// separated by spaces), beside the egress addresses of direct delivery.
    pub spf_include: Option<String>,
    /// The DKIM selector of a new key is this prefix and the date (`mg20261207`).
    pub selector_prefix: String,
    /// How often a pending or failing domain is checked again.
    pub check_interval_secs: u64,
    /// How often a verified domain is checked again.
    pub verified_interval_secs: u64,
    /// How long a domain may stay pending, or verified with a record missing
    /// (`temporary_failure`), before it is `failed`.
    pub grace_hours: u64,
}

impl Default for DomainsConfig {
    fn default() -> Self {
        Self {
            require_verified: false,
            spf_include: None,
            selector_prefix: "mg".into(),
            check_interval_secs: 300,
            verified_interval_secs: 86_400,
            grace_hours: 72,
        }
    }
}

impl DomainsConfig {
    /// The `include:` targets, each a domain name.
    pub fn spf_includes(&self) -> Vec<String> {
        self.spf_include
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect()
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        for include in self.spf_includes() {
            super::check_domain("domains.spf_include", &include)?;
        }
        let prefix = &self.selector_prefix;
        if prefix.is_empty()
            || prefix.len() > 20
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || prefix.starts_with('-')
        {
            bail!(
                "domains.selector_prefix: `{prefix}` must be 1 to 20 lower-case letters, digits or hyphens"
            );
        }
        if self.check_interval_secs == 0 || self.verified_interval_secs == 0 {
            bail!("domains.check_interval_secs and verified_interval_secs must be at least 1");
        }
        if self.grace_hours == 0 || self.grace_hours > 24 * 366 {
            bail!("domains.grace_hours must be from 1 to 8784");
        }
        Ok(())
    }
}
