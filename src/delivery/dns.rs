//! The resolver direct delivery asks, and what a domain's DNS says about where its mail goes
//! (RFC 5321 §5.1, RFC 7505): its MX hosts by preference (shuffled within one preference),
//! each with its addresses; the domain itself when it has no MX (the implicit MX); nowhere
//! for a null MX (`0 .`) or a domain that does not exist; "try later" when DNS fails.
//!
//! One resolver serves every delivery: its cache keeps answers for their TTL (negative ones
//! too), and a semaphore bounds the lookups in flight. A second one validates DNSSEC, for
//! DANE's lookups only ([`Dns::secure`]).

use std::{net::IpAddr, sync::Arc, time::Duration};

use futures_util::StreamExt;
use hickory_resolver::{
    NameServerPool, PoolContext, TlsConfig, TokioResolver,
    config::{
        ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
        ResolverOpts,
    },
    net::{DnsError, DnsHandle, NetError, runtime::TokioRuntimeProvider},
    proto::{
        dnssec::{Proof, TrustAnchors},
        op::{DnsRequestOptions, Query, ResponseCode},
        rr::{Name, RData, RecordType},
    },
    system_conf::read_system_conf,
};
use rand::seq::SliceRandom;
use tokio::sync::Semaphore;

use crate::config::DnsConfig;

/// Lookups in flight at once, per process: a burst of mail to many new domains must not
/// flood the resolver.
const MAX_LOOKUPS: usize = 64;

/// One mail server of a domain: its name (an MX target, or the domain itself for an
/// implicit MX) and its addresses, in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    pub name: String,
    pub preference: u16,
    pub addrs: Vec<IpAddr>,
    /// The MX was the domain itself (no MX records).
    pub implicit: bool,
}

/// Where a domain's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Its mail servers in the order to try them (never empty).
    Hosts(Vec<MxHost>),
    /// RFC 7505 null MX (`MX 0 .`): the domain takes no mail.
    NullMx,
}

/// Why a domain has no route.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DnsFailure {
    /// The domain does not exist, or neither it nor any MX host has an address: permanent.
    #[error("{0}")]
    NoSuchDomain(String),
    /// Timeout, SERVFAIL, refused, no nameserver: try later, and never guess from A records.
    #[error("{0}")]
    Transient(String),
}

/// What DNSSEC says about an answer (RFC 4035 §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secured<T> {
    /// Signed, and the chain of trust from a trust anchor verified.
    Secure(T),
    /// Unsigned (or undeterminable): the answer proves nothing.
    Insecure,
    /// Signed, but the signatures or the chain do not verify: an attack or a broken zone.
    Bogus(String),
}

pub struct Dns {
    resolver: TokioResolver,
    /// The same nameservers, validating DNSSEC from the root's keys or `dns.trust_anchors`.
    /// Separate because only DANE needs to know: routing keeps using the plain resolver, so a
    /// domain whose DNSSEC is broken (or a nameserver that strips signatures) still gets its
    /// mail, through MTA-STS or opportunistic TLS, as before DANE.
    validating: TokioResolver,
    /// The same nameservers, asked directly: for PTR lookups (see [`Dns::ptr_names`]).
    nameservers: NameServerPool<TokioRuntimeProvider>,
    permits: Semaphore,
}

impl Dns {
    /// A resolver for `config.nameservers` (UDP, then TCP for long answers), or the system's
    /// resolv.conf when none are given.
    pub fn build(config: &DnsConfig) -> anyhow::Result<Arc<Self>> {
        Self::build_with(config, false)
    }

    /// A resolver that keeps nothing: each question goes to the nameservers. Checking a
    /// sending domain's records must see a record the moment it is published, not once a
    /// cached "no such record" expires.
    pub fn build_uncached(config: &DnsConfig) -> anyhow::Result<Arc<Self>> {
        Self::build_with(config, true)
    }

    fn build_with(config: &DnsConfig, uncached: bool) -> anyhow::Result<Arc<Self>> {
        let servers = config.nameserver_addrs()?;
        let provider = TokioRuntimeProvider::default();
        let (resolver_config, mut opts) = if servers.is_empty() {
            read_system_conf()
                .map_err(|e| anyhow::anyhow!("reading the system's DNS configuration: {e}"))?
        } else {
            let name_servers = servers
                .iter()
                .map(|addr| {
                    let connection = |mut c: ConnectionConfig| {
                        c.port = addr.port();
                        c
                    };
                    NameServerConfig::new(
                        addr.ip(),
                        true,
                        vec![
                            connection(ConnectionConfig::udp()),
                            connection(ConnectionConfig::tcp()),
                        ],
                    )
                })
                .collect();
            (
                ResolverConfig::from_name_servers(name_servers),
                ResolverOpts::default(),
            )
        };
        opts.timeout = Duration::from_millis(config.timeout_ms);
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        // MX targets are looked up as they are published, never from /etc/hosts or through
        // search domains.
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        if uncached {
            opts.cache_size = 0;
            opts.positive_max_ttl = Some(Duration::ZERO);
            opts.negative_max_ttl = Some(Duration::ZERO);
        }
        let tls =
            TlsConfig::new().map_err(|e| anyhow::anyhow!("building the DNS resolver: {e}"))?;
        let nameservers = NameServerPool::from_config(
            resolver_config.name_servers().to_vec(),
            Arc::new(PoolContext::new(opts.clone(), tls)),
            provider.clone(),
        );
        let build = |anchors: Option<Arc<TrustAnchors>>| {
            let mut builder =
                TokioResolver::builder_with_config(resolver_config.clone(), provider.clone());
            *builder.options_mut() = opts.clone();
            if let Some(anchors) = anchors {
                builder = builder.with_trust_anchor(anchors);
            }
            builder
                .build()
                .map_err(|e| anyhow::anyhow!("building the DNS resolver: {e}"))
        };
        let anchors = match &config.trust_anchors {
            Some(path) => TrustAnchors::from_file(path)
                .map_err(|e| anyhow::anyhow!("dns.trust_anchors {}: {e}", path.display()))?,
            None => TrustAnchors::default(),
        };
        Ok(Arc::new(Self {
            resolver: build(None)?,
            validating: build(Some(Arc::new(anchors)))?,
            nameservers,
            permits: Semaphore::new(MAX_LOOKUPS),
        }))
    }

    /// Where mail for `domain` (an A-label domain) goes.
    pub async fn route(&self, domain: &str) -> Result<Route, DnsFailure> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let mx = {
            let _permit = self.permits.acquire().await.expect("never closed");
            self.resolver.lookup(fqdn.as_str(), RecordType::MX).await
        };
        let mut records: Vec<(u16, String)> = match mx {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect(),
            Err(err) => match negative(&err) {
                Some(ResponseCode::NXDomain) => {
                    return Err(DnsFailure::NoSuchDomain(format!(
                        "the domain {domain} does not exist (DNS NXDOMAIN)"
                    )));
                }
                // The domain exists but publishes no MX: its own address is the MX.
                Some(ResponseCode::NoError) => Vec::new(),
                _ => {
                    return Err(DnsFailure::Transient(format!(
                        "DNS lookup of MX {domain} failed: {err}"
                    )));
                }
            },
        };
        if records.is_empty() {
            let addrs = self.addresses(domain).await?;
            if addrs.is_empty() {
                return Err(DnsFailure::NoSuchDomain(format!(
                    "the domain {domain} has no MX and no address record"
                )));
            }
            return Ok(Route::Hosts(vec![MxHost {
                name: domain.trim_end_matches('.').to_string(),
                preference: 0,
                addrs,
                implicit: true,
            }]));
        }
        // RFC 7505: a single `0 .` says the domain takes no mail at all.
        if records
            .iter()
            .any(|(_, host)| host == "." || host.is_empty())
        {
            return Ok(Route::NullMx);
        }
        // By preference, and in random order among hosts of one preference (RFC 5321 §5.1).
        records.shuffle(&mut rand::rng());
        records.sort_by_key(|(preference, _)| *preference);
        records.dedup_by(|a, b| a.1.eq_ignore_ascii_case(&b.1));
        let mut hosts = Vec::with_capacity(records.len());
        let mut transient = None;
        for (preference, name) in records {
            let name = name.trim_end_matches('.').to_string();
            match self.addresses(&name).await {
                Ok(addrs) if !addrs.is_empty() => hosts.push(MxHost {
                    name,
                    preference,
                    addrs,
                    implicit: false,
                }),
                Ok(_) | Err(DnsFailure::NoSuchDomain(_)) => {}
                Err(err @ DnsFailure::Transient(_)) => transient = Some(err),
            }
        }
        match (hosts.is_empty(), transient) {
            (false, _) => Ok(Route::Hosts(hosts)),
            (true, Some(err)) => Err(err),
            (true, None) => Err(DnsFailure::NoSuchDomain(format!(
                "no MX host of {domain} has an address"
            ))),
        }
    }

    /// The TXT records at `name`, each one's strings joined (RFC 7208 §3.3); empty when the
    /// name has none or does not exist.
    pub async fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, DnsFailure> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let _permit = self.permits.acquire().await.expect("never closed");
        match self.resolver.lookup(fqdn.as_str(), RecordType::TXT).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(txt.txt_data.concat()),
                    _ => None,
                })
                .collect()),
            Err(err) if negative(&err).is_some() => Ok(Vec::new()),
            Err(err) => Err(DnsFailure::Transient(format!(
                "DNS lookup of TXT {name} failed: {err}"
            ))),
        }
    }

    /// The records of `rtype` at `name` through the validating resolver, and whether DNSSEC
    /// proves them. `Secure(empty)` when the name has none and the denial is signed;
    /// `Insecure` when it has none and nothing proves it.
    pub async fn secure(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<Secured<Vec<RData>>, DnsFailure> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let _permit = self.permits.acquire().await.expect("never closed");
        match self.validating.lookup(fqdn.as_str(), rtype).await {
            Ok(lookup) => {
                let records: Vec<_> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .collect();
                if records.iter().any(|r| r.proof == Proof::Bogus) {
                    return Ok(Secured::Bogus(format!(
                        "the DNSSEC signatures of {rtype} {name} do not verify"
                    )));
                }
                if records.is_empty() || records.iter().any(|r| r.proof != Proof::Secure) {
                    return Ok(Secured::Insecure);
                }
                Ok(Secured::Secure(
                    records.into_iter().map(|r| r.data.clone()).collect(),
                ))
            }
            Err(NetError::Dns(DnsError::Nsec { proof, .. })) => Ok(match proof {
                Proof::Bogus => Secured::Bogus(format!(
                    "the DNSSEC denial of {rtype} {name} does not verify"
                )),
                Proof::Secure => Secured::Secure(Vec::new()),
                _ => Secured::Insecure,
            }),
            Err(NetError::Dns(DnsError::DnssecBogus)) => Ok(Secured::Bogus(format!(
                "DNSSEC validation of {rtype} {name} failed"
            ))),
            // A signed denial has been checked by the time it comes back as "no records".
            Err(err) if negative(&err).is_some() => Ok(Secured::Secure(Vec::new())),
            Err(err) => Err(DnsFailure::Transient(format!(
                "DNS lookup of {rtype} {name} failed: {err}"
            ))),
        }
    }

    /// The names the PTR records of `ip` give, without the final dot; empty when it has
    /// none. Asked of the nameservers themselves, uncached: the resolver answers every PTR
    /// under 127.in-addr.arpa with `localhost` without asking (RFC 6761 §6.3), and what
    /// matters here is what DNS publishes for the address.
    pub async fn ptr_names(&self, ip: IpAddr) -> Result<Vec<String>, DnsFailure> {
        let name = reverse_name(ip);
        let failed =
            |why: String| DnsFailure::Transient(format!("DNS lookup of PTR {name} failed: {why}"));
        let query = Query::query(Name::from(ip), RecordType::PTR);
        let answer = {
            let _permit = self.permits.acquire().await.expect("never closed");
            self.nameservers
                .lookup(query, DnsRequestOptions::default())
                .next()
                .await
        };
        match answer {
            Some(Ok(response)) => match response.metadata.response_code {
                ResponseCode::NoError | ResponseCode::NXDomain => Ok(response
                    .answers
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::PTR(ptr) => Some(ptr.0.to_ascii().trim_end_matches('.').to_string()),
                        _ => None,
                    })
                    .collect()),
                code => Err(failed(code.to_string())),
            },
            Some(Err(err)) if negative(&err).is_some() => Ok(Vec::new()),
            Some(Err(err)) => Err(failed(err.to_string())),
            None => Err(failed("no answer".into())),
        }
    }

    /// A and AAAA records of `host`; empty when it has none.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsFailure> {
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let _permit = self.permits.acquire().await.expect("never closed");
        match self.resolver.lookup_ip(fqdn.as_str()).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(err) => match negative(&err) {
                Some(ResponseCode::NXDomain) => Err(DnsFailure::NoSuchDomain(format!(
                    "{host} does not exist (DNS NXDOMAIN)"
                ))),
                Some(ResponseCode::NoError) => Ok(Vec::new()),
                _ => Err(DnsFailure::Transient(format!(
                    "DNS lookup of {host} failed: {err}"
                ))),
            },
        }
    }
}

/// The name a PTR record of `ip` is published under, with its final dot:
/// `10.113.0.203.in-addr.arpa.`, or the 32 nibbles under `ip6.arpa.` (RFC 3596 §2.5).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(73);
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            name + "ip6.arpa."
        }
    }
}

/// What a name publishes of one record type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The records (TXT: each record's strings joined; CNAME: the target; MX: `pref host`).
    Records(Vec<String>),
    /// No such record (NXDOMAIN, or NOERROR with none of that type).
    Nothing,
}

impl Dns {
    /// The TXT, CNAME or MX records of `name`, as published; `Transient` when DNS did not
    /// answer (timeout, SERVFAIL), which says nothing about the records.
    pub async fn published(&self, name: &str, kind: RecordType) -> Result<Published, DnsFailure> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let answer = {
            let _permit = self.permits.acquire().await.expect("never closed");
            self.resolver.lookup(fqdn.as_str(), kind).await
        };
        match answer {
            Ok(lookup) => {
                let records: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(txt) if kind == RecordType::TXT => Some(
                            txt.txt_data
                                .iter()
                                .map(|part| String::from_utf8_lossy(part).into_owned())
                                .collect::<String>(),
                        ),
                        RData::CNAME(target) if kind == RecordType::CNAME => {
                            Some(target.0.to_ascii().trim_end_matches('.').to_string())
                        }
                        RData::MX(mx) if kind == RecordType::MX => Some(format!(
                            "{} {}",
                            mx.preference,
                            mx.exchange.to_ascii().trim_end_matches('.')
                        )),
                        _ => None,
                    })
                    .collect();
                Ok(if records.is_empty() {
                    Published::Nothing
                } else {
                    Published::Records(records)
                })
            }
            Err(err) => match negative(&err) {
                Some(_) => Ok(Published::Nothing),
                None => Err(DnsFailure::Transient(format!(
                    "DNS lookup of {kind} {name} failed: {err}"
                ))),
            },
        }
    }
}

/// The response code of an answer that had no records (NXDOMAIN, or NOERROR with nothing):
/// those are facts about the domain. Anything else (SERVFAIL, timeouts) says nothing.
fn negative(err: &NetError) -> Option<ResponseCode> {
    match err {
        NetError::Dns(DnsError::NoRecordsFound(no)) => match no.response_code {
            code @ (ResponseCode::NXDomain | ResponseCode::NoError) => Some(code),
            _ => None,
        },
        _ => None,
    }
}

/// Whether an MX address is one a public domain's mail server cannot legitimately have:
/// loopback, private (RFC 1918, unique local), link-local, unspecified, CGNAT, multicast.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_are_the_ones_ptr_records_live_under() {
        assert_eq!(
            reverse_name("203.0.113.10".parse().unwrap()),
            "10.113.0.203.in-addr.arpa."
        );
        assert_eq!(
            // RFC 3596 §2.5's own example.
            reverse_name("4321:0:1:2:3:4:567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa."
        );
    }

    #[test]
    fn private_ranges_are_private() {
        for ip in [
            "127.0.0.2",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["203.0.113.10", "8.8.8.8", "2001:db8::1", "100.128.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
