//! `[smtp]`: the SMTP submission listener, for apps that send over SMTP with an API key.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The SMTP submission listener: apps that speak SMTP send through it with an API key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Run the listener in `serve`.
    pub enabled: bool,
    /// Name in the greeting and in the generated dev certificate.
    pub hostname: String,
    /// PEM certificate chain and private key for STARTTLS; unset means a self-signed
    /// certificate generated at start (development only: clients must skip verification).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A second port speaking TLS from the first byte (like 465), if set.
    pub implicit_tls_addr: Option<SocketAddr>,
    /// CIDRs (or single addresses) whose clients may send without AUTH, into
    /// `trusted_project`. Empty means every client must authenticate.
    pub trusted_networks: Vec<String>,
    /// The project that mail from trusted networks belongs to (created if missing).
    pub trusted_project: Option<String>,
    /// Largest message accepted (advertised with SIZE); unset means `http.max_message_bytes`.
    pub max_message_bytes: Option<usize>,
    /// Recipients per message, as over HTTP.
    pub max_recipients: usize,
    /// A client silent this long is disconnected.
    pub idle_timeout_secs: u64,
    /// No session lasts longer than this, however busy.
    pub session_timeout_secs: u64,
    /// Concurrent sessions per process; more are turned away with 421.
    pub max_sessions: usize,
    /// Failed AUTH attempts from one IP address before it is locked out…
    pub auth_max_failures: u32,
    /// …for this long (failures older than this are forgotten too).
    pub auth_lockout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            hostname: "localhost".into(),
            tls_cert: None,
            tls_key: None,
            implicit_tls_addr: None,
            trusted_networks: Vec::new(),
            trusted_project: None,
            max_message_bytes: None,
            max_recipients: crate::domain::email::MAX_RECIPIENTS,
            idle_timeout_secs: 300,
            session_timeout_secs: 1800,
            max_sessions: 200,
            auth_max_failures: 5,
            auth_lockout_secs: 300,
        }
    }
}

impl SmtpConfig {
    /// Parses `trusted_networks`; a bare address counts as a single host.
    pub fn trusted_networks(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.trusted_networks
            .iter()
            .map(|raw| {
                let s = raw.trim();
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| {
                        format!("smtp.trusted_networks: `{s}` is not a CIDR like 10.0.0.0/8")
                    })
            })
            .collect()
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        // Without a project, mail from a trusted network would have no owner.
        if !self.trusted_networks()?.is_empty() && self.trusted_project.is_none() {
            bail!("smtp.trusted_networks needs smtp.trusted_project");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("smtp.tls_cert and smtp.tls_key go together");
        }
        if self.max_recipients == 0
            || self.max_sessions == 0
            || self.idle_timeout_secs == 0
            || self.session_timeout_secs == 0
        {
            bail!(
                "smtp.max_recipients, smtp.max_sessions, smtp.idle_timeout_secs and smtp.session_timeout_secs must be positive"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn trusted_networks_need_a_project_and_parse() {
        let mut c = Config::default();
        c.smtp.trusted_networks = vec!["10.0.0.0/8".into(), "192.0.2.7".into()];
        assert!(c.validate().is_err());
        c.smtp.trusted_project = Some("internal".into());
        c.validate().unwrap();
        let nets = c.smtp.trusted_networks().unwrap();
        assert!(nets[1].contains(&"192.0.2.7".parse::<std::net::IpAddr>().unwrap()));
        c.smtp.trusted_networks = vec!["10.0.0.0/33".into()];
        assert!(c.validate().is_err());
    }
}
