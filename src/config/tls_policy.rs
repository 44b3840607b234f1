//! `[tls_policy]`: which published TLS policies of recipient domains direct delivery honours
//! (MTA-STS, RFC 8461; DANE, RFC 7672), and the extra CA for private PKI and tests.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsPolicyConfig {
    /// Look up and honour each recipient domain's MTA-STS policy.
    pub mta_sts: bool,
    /// Look up DANE TLSA records (RFC 7672) for MX hosts whose DNS answers DNSSEC proves,
    /// and require TLS with a matching certificate where they exist. Takes precedence over
    /// MTA-STS.
    pub dane: bool,
    /// A PEM file of CA certificates trusted besides the web PKI roots, both for fetching
    /// MTA-STS policies over HTTPS and for verifying MX certificates. For a private mail
    /// network and tests; unset for the public Internet.
    pub ca_file: Option<PathBuf>,
}

impl Default for TlsPolicyConfig {
    fn default() -> Self {
        Self {
            mta_sts: true,
            dane: true,
            ca_file: None,
        }
    }
}

impl TlsPolicyConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.ca_file
            && !path.is_file()
        {
            anyhow::bail!(
                "tls_policy.ca_file {} is not a readable file",
                path.display()
            );
        }
        Ok(())
    }
}
