//! `[dns]`: the resolver direct delivery (`relays.NAME.mx = true`) asks for MX and address
//! records.

use std::{net::SocketAddr, path::PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// `"ip"` or `"ip:port"` (port 53 when left out). Empty: the system's resolv.conf.
    pub nameservers: Vec<String>,
    /// How long one query waits for an answer before it counts as a DNS failure (transient).
    pub timeout_ms: u64,
    /// A file of DNSKEY records (the zone's key-signing key, in zone-file format) that DNSSEC
    /// validation for DANE trusts instead of the root's keys. For private zones and tests;
    /// unset for the public Internet.
    pub trust_anchors: Option<PathBuf>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout_ms: 5000,
            trust_anchors: None,
        }
    }
}

impl DnsConfig {
    /// The nameservers as socket addresses (port 53 by default).
    pub fn nameserver_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        self.nameservers
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<SocketAddr>()
                    .or_else(|_| {
                        s.trim_start_matches('[')
                            .trim_end_matches(']')
                            .parse::<std::net::IpAddr>()
                            .map(|ip| SocketAddr::new(ip, 53))
                    })
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "dns.nameservers: `{s}` is not an IP address or IP:port (e.g. \"127.0.0.1:5353\")"
                        )
                    })
            })
            .collect()
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        self.nameserver_addrs()?;
        if self.timeout_ms == 0 {
            anyhow::bail!("dns.timeout_ms must be at least 1");
        }
        if let Some(path) = &self.trust_anchors
            && !path.is_file()
        {
            anyhow::bail!(
                "dns.trust_anchors {} is not a readable file",
                path.display()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_take_an_ip_or_ip_and_port() {
        let c = DnsConfig {
            nameservers: vec![
                "127.0.0.1:5353".into(),
                "192.0.2.1".into(),
                "[::1]:53".into(),
            ],
            ..DnsConfig::default()
        };
        let addrs = c.nameserver_addrs().unwrap();
        assert_eq!(addrs[0].to_string(), "127.0.0.1:5353");
        assert_eq!(addrs[1].to_string(), "192.0.2.1:53");
        assert_eq!(addrs[2].to_string(), "[::1]:53");
        let bad = DnsConfig {
            nameservers: vec!["dns.example".into()],
            ..DnsConfig::default()
        };
        assert!(format!("{:#}", bad.validate().unwrap_err()).contains("dns.nameservers"));
    }
}
