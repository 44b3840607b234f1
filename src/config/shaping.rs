//! `[shaping.NAME]`: limits per destination *site* for direct delivery (`relays.NAME.mx =
//! true`). A site is the set of MX hosts a domain resolves to; an entry claims the sites
//! whose MX hosts end in one of its `mx_suffix`es, and `[shaping.default]` covers the rest
//! (each distinct MX set is then a site of its own). Built-in entries for the large mailbox
//! providers (`google`, `yahoo`, `microsoft`, `apple`) apply unless an entry of the same
//! name changes them, key by key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The entry for every site no other entry claims.
pub const DEFAULT_SHAPING: &str = "default";

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShapingConfig {
    /// MX host name endings this entry claims, like `".google.com"` (matched without regard
    /// to case, on a dot boundary). Not for `default`.
    #[serde(default)]
    pub mx_suffix: Vec<String>,
    /// Most connections open to the site at once from one egress address, across every
    /// mailgate process (through Redis when `redis_url` is set).
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Most transactions a second to the site from one egress address, across every process.
    #[serde(default)]
    pub max_rate_per_sec: Option<f64>,
    /// Transactions one connection carries before it is closed.
    #[serde(default)]
    pub max_messages_per_connection: Option<u32>,
    /// `required`: mail to the site goes only over STARTTLS with a certificate valid for the
    /// MX name (else it is deferred, never sent in clear), whatever the domain publishes;
    /// `opportunistic` (the default): the domain's MTA-STS or DANE policy decides.
    #[serde(default)]
    pub tls: Option<TlsRequirement>,
}

/// What a shaping entry asks of the TLS to its sites.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsRequirement {
    Required,
    #[default]
    Opportunistic,
}

impl ShapingConfig {
    fn builtin(suffixes: &[&str], connections: u32, per_connection: u32) -> Self {
        Self {
            mx_suffix: suffixes.iter().map(|s| s.to_string()).collect(),
            max_connections: Some(connections),
            max_rate_per_sec: None,
            max_messages_per_connection: Some(per_connection),
            tls: None,
        }
    }

    /// `self` with the keys `over` sets replacing its own.
    fn overridden_by(&self, over: &Self) -> Self {
        Self {
            mx_suffix: if over.mx_suffix.is_empty() {
                self.mx_suffix.clone()
            } else {
                over.mx_suffix.clone()
            },
            max_connections: over.max_connections.or(self.max_connections),
            max_rate_per_sec: over.max_rate_per_sec.or(self.max_rate_per_sec),
            max_messages_per_connection: over
                .max_messages_per_connection
                .or(self.max_messages_per_connection),
            tls: over.tls.or(self.tls),
        }
    }

    fn validate(&self, name: &str) -> anyhow::Result<()> {
        if name == DEFAULT_SHAPING && !self.mx_suffix.is_empty() {
            anyhow::bail!(
                "shaping.default.mx_suffix: the default entry covers every site no other entry claims; it takes no suffixes"
            );
        }
        if name != DEFAULT_SHAPING && self.mx_suffix.is_empty() {
            anyhow::bail!(
                "shaping.{name}.mx_suffix must list at least one MX host ending, e.g. [\".mail.example.net\"]"
            );
        }
        for suffix in &self.mx_suffix {
            let bare = suffix.trim_start_matches('.');
            if bare.is_empty()
                || !bare
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                anyhow::bail!(
                    "shaping.{name}.mx_suffix: {suffix:?} is not a host name ending (letters, digits, `-` and `.`)"
                );
            }
        }
        if self.max_connections == Some(0) || self.max_messages_per_connection == Some(0) {
            anyhow::bail!(
                "shaping.{name}.max_connections and shaping.{name}.max_messages_per_connection must be at least 1"
            );
        }
        if let Some(rate) = self.max_rate_per_sec
            && !(rate.is_finite() && rate > 0.0)
        {
            anyhow::bail!("shaping.{name}.max_rate_per_sec must be a positive number");
        }
        Ok(())
    }
}

/// The entries mailgate ships. The numbers are what the providers ask for where they
/// publish any, else common practice (see docs/configuration.md#shaping for each source).
pub fn builtin() -> BTreeMap<String, ShapingConfig> {
    BTreeMap::from([
        (
            DEFAULT_SHAPING.to_string(),
            ShapingConfig {
                mx_suffix: Vec::new(),
                max_connections: Some(10),
                max_rate_per_sec: None,
                max_messages_per_connection: Some(100),
                tls: None,
            },
        ),
        (
            "google".to_string(),
            ShapingConfig::builtin(&[".google.com", ".googlemail.com"], 5, 50),
        ),
        (
            "yahoo".to_string(),
            ShapingConfig::builtin(&[".yahoodns.net"], 5, 20),
        ),
        (
            "microsoft".to_string(),
            ShapingConfig::builtin(&[".protection.outlook.com", ".mx.microsoft"], 5, 50),
        ),
        (
            "apple".to_string(),
            ShapingConfig::builtin(&[".icloud.com"], 10, 5),
        ),
    ])
}

/// The built-in entries with the configured ones over them (same name: key by key).
pub fn effective(configured: &BTreeMap<String, ShapingConfig>) -> BTreeMap<String, ShapingConfig> {
    let mut all = builtin();
    for (name, entry) in configured {
        let merged = match all.get(name) {
            Some(base) => base.overridden_by(entry),
            None => entry.clone(),
        };
        all.insert(name.clone(), merged);
    }
    all
}

pub(super) fn validate(configured: &BTreeMap<String, ShapingConfig>) -> anyhow::Result<()> {
    for (name, entry) in effective(configured) {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            anyhow::bail!(
                "shaping.{name}: an entry's name is letters, digits, `-` and `_` (it labels metrics)"
            );
        }
        entry.validate(&name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_entry_changes_a_builtin_key_by_key() {
        let configured = BTreeMap::from([(
            "google".to_string(),
            ShapingConfig {
                max_connections: Some(2),
                ..Default::default()
            },
        )]);
        let all = effective(&configured);
        assert_eq!(all["google"].max_connections, Some(2));
        assert_eq!(all["google"].max_messages_per_connection, Some(50));
        assert_eq!(all["google"].mx_suffix, [".google.com", ".googlemail.com"]);
        assert!(validate(&configured).is_ok());
        let no_suffix = BTreeMap::from([("mine".to_string(), ShapingConfig::default())]);
        assert!(validate(&no_suffix).is_err());
    }
}
