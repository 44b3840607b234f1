//! `[bounce]` and `[inbound]`: the return path mailgate relays with, and the MX-facing SMTP
//! listener through which bounces, complaints and inbound mail come back.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::RunnerSettings;

/// VERP return paths: with a domain set, each recipient's envelope sender is
/// `b-<token>@<domain>`, so a bounce mailed back names the recipient it is about.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BounceConfig {
    /// e.g. `bounces.example.com`, whose MX points at the inbound listener. Unset: mail keeps
    /// the sender's own address as its return path, and bounces go there.
    pub domain: Option<String>,
}

/// The inbound listener: no AUTH, and mail only for the bounce domains and the projects'
/// inbound domains; every other recipient is refused (`550 5.7.1`), so it is never a relay.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboundConfig {
    /// Where it listens, e.g. `0.0.0.0:25`. Unset: no inbound listener.
    pub addr: Option<SocketAddr>,
    /// Name in the greeting and the dev certificate; unset means `smtp.hostname`.
    pub hostname: Option<String>,
    /// PEM certificate chain and key for STARTTLS; unset means `smtp.tls_cert`/`tls_key`,
    /// else a self-signed certificate (senders of bounces rarely check it).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest message accepted (advertised with SIZE).
    pub max_message_bytes: usize,
    /// Recipients per message.
    pub max_recipients: usize,
    /// Concurrent sessions per process; more are turned away with 421.
    pub max_sessions: usize,
    pub idle_timeout_secs: u64,
    pub session_timeout_secs: u64,
    /// Messages one client may hand in per minute; more get `451 4.7.1`. A client is an
    /// IPv4 address or an IPv6 /64. Each refused recipient costs a unit too; a client out of
    /// units at a refused recipient is disconnected with `421 4.7.1`.
    pub per_ip_per_minute: u32,
    /// Mailboxes at a bounce domain that take mail without a VERP token, e.g. the address a
    /// feedback loop is registered with; `postmaster` always does. Any other address at a
    /// bounce domain that is not a return path mailgate gave out is refused at `RCPT`
    /// (`550 5.1.1`).
    pub bounce_mailboxes: Vec<String>,
    /// Processing: messages at once per process, claims, leases and shutdown.
    #[serde(flatten)]
    pub runner: RunnerSettings,
    /// Largest attachment put in an `email.received` webhook (base64); larger ones are listed
    /// with their size but without content.
    pub max_attachment_bytes: usize,
    /// Largest `data` of an `email.received` webhook, as JSON. What does not fit is left out
    /// (attachment contents last to first, then headers, then the HTML and text cut), and
    /// the payload says `"truncated": true`.
    pub max_payload_bytes: usize,
}

/// The smallest `inbound.max_payload_bytes` accepted.
const MIN_PAYLOAD_BYTES: usize = 16 * 1024;

impl Default for InboundConfig {
    fn default() -> Self {
        Self {
            addr: None,
            hostname: None,
            tls_cert: None,
            tls_key: None,
            max_message_bytes: 10 * 1024 * 1024,
            max_recipients: 50,
            max_sessions: 100,
            idle_timeout_secs: 120,
            session_timeout_secs: 600,
            per_ip_per_minute: 120,
            bounce_mailboxes: vec!["abuse".into(), "fbl".into()],
            runner: RunnerSettings {
                concurrency: 4,
                claim_batch: None,
                poll_interval_ms: 1000,
                lease_secs: 30,
                shutdown_grace_secs: 5,
            },
            max_attachment_bytes: 5 * 1024 * 1024,
            max_payload_bytes: 10 * 1024 * 1024,
        }
    }
}

impl InboundConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("inbound.tls_cert and inbound.tls_key go together");
        }
        if self.max_recipients == 0
            || self.max_sessions == 0
            || self.per_ip_per_minute == 0
            || self.idle_timeout_secs == 0
            || self.session_timeout_secs == 0
        {
            bail!(
                "inbound.max_recipients, max_sessions, per_ip_per_minute, idle_timeout_secs and session_timeout_secs must be positive"
            );
        }
        if self.max_payload_bytes < MIN_PAYLOAD_BYTES {
            bail!(
                "inbound.max_payload_bytes must be at least {MIN_PAYLOAD_BYTES} (an email.received payload needs room for its envelope and headers)"
            );
        }
        for mailbox in &self.bounce_mailboxes {
            let ok = !mailbox.is_empty()
                && mailbox.len() <= 64
                && mailbox
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
            if !ok {
                bail!(
                    "inbound.bounce_mailboxes: `{mailbox}` is not a local part like fbl (the part before @)"
                );
            }
        }
        self.runner.validate("inbound")
    }
}

impl BounceConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if let Some(domain) = &self.domain {
            check_domain("bounce.domain", domain)?;
        }
        Ok(())
    }
}

/// A plain DNS name: letters, digits, `-` and dots, no trailing dot.
pub fn check_domain(what: &str, domain: &str) -> anyhow::Result<()> {
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        bail!("{what}: `{domain}` is not a domain name like bounces.example.com");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn the_payload_bound_and_bounce_mailboxes_are_checked() {
        assert!(Config::default().validate().is_ok());
        let mut c = Config::default();
        c.inbound.max_payload_bytes = 1000;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("inbound.max_payload_bytes"), "{err}");
        let mut c = Config::default();
        c.inbound.bounce_mailboxes = vec!["fbl@bounces.example.com".into()];
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("inbound.bounce_mailboxes"), "{err}");
    }
}
