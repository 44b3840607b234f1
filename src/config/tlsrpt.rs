//! `[tlsrpt]`: TLS reporting (RFC 8460): counting direct delivery's TLS sessions per
//! recipient domain, and the daily aggregate report to each domain that asks for one.

use std::{path::PathBuf, time::Duration};

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsrptConfig {
    /// Count sessions and send the daily reports. Off by default: reports go to addresses
    /// the recipient domains publish, and name the sender.
    pub enabled: bool,
    /// The report's `organization-name`: who sends it. Required when enabled.
    pub org_name: Option<String>,
    /// The report's `contact-info`: an address or URL to write to about it. Required when
    /// enabled.
    pub contact: Option<String>,
    /// The From address of reports sent by mail (`mailto:` rua); unset: `contact`, which
    /// must then be an address. Its domain is the report's submitter.
    pub from: Option<String>,
    /// The project the report mail is sent as (created if missing): it takes that
    /// project's relay, and its mail shows in that project's lists.
    pub project: String,
    /// The UTC hour from which yesterday's reports are sent.
    pub send_hour: u32,
    /// How often each instance looks for reports to send (and retries come due).
    pub interval_secs: u64,
    /// How often each instance adds its session counts to Postgres.
    pub flush_secs: f64,
    /// Attempts at one report before it is given up (each retry sends only to the `rua`
    /// URIs that did not take it yet).
    pub max_attempts: i32,
    /// Wait before the first retry; it doubles with each one, up to 6 hours.
    pub retry_secs: f64,
    /// Longest one `https:` POST may take.
    pub timeout_secs: f64,
    /// Reports older than this many days are deleted, with their counts.
    pub keep_days: i64,
    /// Allow `https:` report URLs on loopback, private and other non-public addresses (tests
    /// and private networks only: it opens the door to SSRF).
    pub allow_private_targets: bool,
    /// A PEM file of CA certificates trusted for `https:` report URLs besides the web PKI
    /// roots and `tls_policy.ca_file`. For tests and private PKI.
    pub ca_file: Option<PathBuf>,
}

impl Default for TlsrptConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            org_name: None,
            contact: None,
            from: None,
            project: "mailgate-tlsrpt".into(),
            send_hour: 1,
            interval_secs: 600,
            flush_secs: 10.0,
            max_attempts: 6,
            retry_secs: 600.0,
            timeout_secs: 30.0,
            keep_days: 30,
            allow_private_targets: false,
            ca_file: None,
        }
    }
}

impl TlsrptConfig {
    pub fn flush_every(&self) -> Duration {
        Duration::from_secs_f64(self.flush_secs)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }

    /// The From address of mailed reports.
    pub fn from_address(&self) -> Option<&str> {
        self.from
            .as_deref()
            .or(self.contact.as_deref().filter(|c| c.contains('@')))
            .map(|a| a.strip_prefix("mailto:").unwrap_or(a))
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        for (name, secs) in [
            ("flush_secs", self.flush_secs),
            ("retry_secs", self.retry_secs),
            ("timeout_secs", self.timeout_secs),
        ] {
            if !(secs.is_finite() && secs > 0.0) {
                bail!("tlsrpt.{name} must be a positive number of seconds");
            }
        }
        if self.send_hour > 23 {
            bail!("tlsrpt.send_hour must be an hour of the day, 0 to 23 (UTC)");
        }
        if self.max_attempts < 1 {
            bail!("tlsrpt.max_attempts must be at least 1");
        }
        if self.keep_days < 2 {
            bail!("tlsrpt.keep_days must be at least 2 (yesterday's report is sent today)");
        }
        if let Some(path) = &self.ca_file
            && !path.is_file()
        {
            bail!("tlsrpt.ca_file {} is not a readable file", path.display());
        }
        if !self.enabled {
            return Ok(());
        }
        if self.org_name.as_deref().is_none_or(|s| s.trim().is_empty()) {
            bail!(
                "tlsrpt.org_name is required when tlsrpt.enabled (the report's organization-name)"
            );
        }
        if self.contact.as_deref().is_none_or(|s| s.trim().is_empty()) {
            bail!("tlsrpt.contact is required when tlsrpt.enabled (the report's contact-info)");
        }
        match self.from_address() {
            Some(from) if crate::domain::EmailAddress::parse(from).is_ok() => Ok(()),
            Some(from) => bail!("tlsrpt.from `{from}` is not an email address"),
            None => bail!(
                "tlsrpt.from is required when tlsrpt.contact is not an email address (reports by mail come from it)"
            ),
        }
    }
}
