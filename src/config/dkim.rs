//! `[[dkim]]`: signing keys, one per sender domain.

use std::{collections::HashSet, path::PathBuf};

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// One DKIM signing key: mail whose From domain is `domain` (or a subdomain of it without a
/// key of its own) is signed with it before relay.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKeyConfig {
    pub domain: String,
    /// Published at `{selector}._domainkey.{domain}`.
    pub selector: String,
    #[serde(default)]
    pub algorithm: DkimAlgorithm,
    /// PEM private key: PKCS#1 or PKCS#8 for RSA, PKCS#8 for Ed25519
    /// (`openssl genpkey -algorithm ed25519`).
    pub private_key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum DkimAlgorithm {
    #[default]
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    #[serde(rename = "ed25519-sha256")]
    Ed25519Sha256,
}

impl DkimAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RsaSha256 => "rsa-sha256",
            Self::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    /// From its stored name (`as_str`); anything else is RSA, the default.
    pub fn parse(name: &str) -> Self {
        if name == Self::Ed25519Sha256.as_str() {
            Self::Ed25519Sha256
        } else {
            Self::RsaSha256
        }
    }
}

pub(super) fn validate(keys: &[DkimKeyConfig]) -> anyhow::Result<()> {
    let mut domains = HashSet::new();
    for key in keys {
        if key.domain.trim().is_empty() || key.selector.trim().is_empty() {
            bail!("dkim: every key needs a domain and a selector");
        }
        // One key per domain keeps the choice of signer unambiguous.
        if !domains.insert(key.domain.trim().trim_end_matches('.').to_ascii_lowercase()) {
            bail!("dkim: more than one key for domain {}", key.domain);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use figment::{
        Figment,
        providers::{Format, Serialized, Toml},
    };

    use super::*;
    use crate::{Config, config::LogFormat};

    #[test]
    fn dkim_keys_need_a_domain_a_selector_and_one_key_per_domain() {
        let key = |domain: &str| DkimKeyConfig {
            domain: domain.into(),
            selector: "mg1".into(),
            algorithm: DkimAlgorithm::default(),
            private_key_file: "/etc/mailgate/dkim.pem".into(),
        };
        let mut c = Config {
            dkim: vec![key("example.com"), key("example.org")],
            ..Config::default()
        };
        c.validate().unwrap();
        c.dkim.push(key("Example.COM."));
        assert!(c.validate().is_err());
        c.dkim = vec![key(" ")];
        assert!(c.validate().is_err());
    }

    #[test]
    fn dkim_tables_and_log_format_come_from_toml() {
        let c: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(
                r#"
                log_format = "json"
                [[dkim]]
                domain = "example.com"
                selector = "mg1"
                algorithm = "ed25519-sha256"
                private_key_file = "/etc/mailgate/dkim/example.com.pem"
                "#,
            ))
            .extract()
            .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.dkim[0].algorithm, DkimAlgorithm::Ed25519Sha256);
        assert_eq!(Config::default().log_format, LogFormat::Human);
    }
}
