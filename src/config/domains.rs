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
    /// The label of a new domain's return-path subdomain (`bounces`: bounces.example.com),
    /// unless the domain is created with its own. With the inbound listener on, its MX
    /// record is asked for, and once published mail from the domain uses it as the
    /// envelope sender, so bounces come back and SPF aligns with the From domain.
    pub return_path: String,
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
            return_path: "bounces".into(),
            check_interval_secs: 300,
            verified_interval_secs: 86_400,
            grace_hours: 72,
        }
    }
}

/// A return-path label: one DNS label of lower-case letters, digits and inner hyphens.
pub fn check_label(label: &str) -> Result<(), &'static str> {
    let ok = (1..=63).contains(&label.len())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("must be one DNS label of lower-case letters, digits and inner hyphens, e.g. bounces")
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
        if let Err(why) = check_label(&self.return_path) {
            bail!("domains.return_path: `{}` {why}", self.return_path);
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
