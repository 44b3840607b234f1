//! The DNS records a sending domain publishes, as mailgate asks for them: each with its
//! kind, type, name, value, TTL, priority where it applies, and what the last check found.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{config::Config, store::domains::KeyRow};

/// TTL suggested for every record.
pub const TTL: u32 = 3600;

/// One record to publish.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Record {
    /// What it is for: `DKIM`, `SPF`, `DMARC`, `TRACKING`, or `RETURN_PATH` (the MX of the
    /// return-path subdomain; its SPF record is an `SPF` one at that name).
    pub record: String,
    /// DNS type: `TXT`, `MX` or `CNAME`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The full name, without a trailing dot.
    pub name: String,
    pub value: String,
    pub ttl: u32,
    /// For MX records.
    pub priority: Option<u16>,
    /// `not_started` (never checked), `pending`, `verified`, `failed` or `temporary_failure`.
    pub status: String,
    /// Whether the domain is verified only with this record; the others are recommended.
    pub required: bool,
    /// What DNS holds when it does not match (`missing`, `different value`, `two SPF
    /// records`, `more than 10 DNS lookups`); absent when it matches or was not checked.
    pub problem: Option<String>,
    /// The record found in DNS, when one was found.
    pub found: Option<String>,
}

/// What a record needs from DNS to count as published.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// A TXT with the DKIM public key `p`.
    Dkim { public_key: String },
    /// One SPF TXT with these terms (`ip4:…`, `include:…`), within 10 lookups.
    Spf { terms: Vec<String> },
    /// Any DMARC record.
    Dmarc,
    /// A CNAME to this host.
    Cname { target: String },
    /// An MX naming this host (among others or not).
    Mx { host: String },
}

/// A record with what its check expects.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub record: Record,
    pub expect: Expect,
}

/// What the records of one domain depend on besides the config.
pub struct Subject<'a> {
    pub name: &'a str,
    /// Its keys: the active ones first, pending ones after a rotation.
    pub keys: &'a [KeyRow],
    pub dmarc_rua: Option<&'a str>,
    /// The label of its return-path subdomain.
    pub return_path: &'a str,
    /// Whether its project tracks opens or clicks (then a tracking CNAME is asked).
    pub tracks: bool,
    /// The last check's findings, by `<record> <name>`.
    pub checks: &'a Value,
}

/// The records of a domain under `config`, with the last check's findings.
pub fn wanted(config: &Config, subject: &Subject<'_>) -> Vec<Wanted> {
    let Subject {
        name,
        keys,
        dmarc_rua,
        return_path,
        tracks,
        checks,
    } = *subject;
    let mut out = Vec::new();
    let mut push = |record: &str,
                    kind: &str,
                    rr_name: String,
                    value: String,
                    required: bool,
                    priority: Option<u16>,
                    expect: Expect| {
        let found = &checks[&check_key(record, &rr_name)];
        out.push(Wanted {
            record: Record {
                record: record.into(),
                kind: kind.into(),
                name: rr_name,
                value,
                ttl: TTL,
                priority,
                status: found["status"]
                    .as_str()
                    .unwrap_or("not_started")
                    .to_string(),
                required,
                problem: found["problem"].as_str().map(str::to_string),
                found: found["found"].as_str().map(str::to_string),
            },
            expect,
        });
    };
    for key in keys.iter().filter(|k| k.state != "retired") {
        push(
            "DKIM",
            "TXT",
            format!("{}._domainkey.{name}", key.selector),
            format!(
                "v=DKIM1; k={}; p={}",
                dkim_key_type(&key.algorithm),
                key.public_key
            ),
            key.state == "active",
            None,
            Expect::Dkim {
                public_key: key.public_key.clone(),
            },
        );
    }
    let terms = spf_terms(config);
    if !terms.is_empty() {
        push(
            "SPF",
            "TXT",
            name.to_string(),
            format!("v=spf1 {} ~all", terms.join(" ")),
            true,
            None,
            Expect::Spf {
                terms: terms.clone(),
            },
        );
    }
    // The return path: bounces to b-<token>@bounces.<name> reach the inbound listener, and
    // SPF is checked (and aligned, for DMARC) on that name rather than a foreign one.
    if let Some(host) = return_path_host(config) {
        let rp = return_path_name(return_path, name);
        push(
            "RETURN_PATH",
            "MX",
            rp.clone(),
            host.clone(),
            false,
            Some(10),
            Expect::Mx { host },
        );
        if !terms.is_empty() {
            push(
                "SPF",
                "TXT",
                rp,
                format!("v=spf1 {} ~all", terms.join(" ")),
                false,
                None,
                Expect::Spf { terms },
            );
        }
    }
    let rua = dmarc_rua
        .map(str::to_string)
        .unwrap_or_else(|| format!("mailto:dmarc@{name}"));
    push(
        "DMARC",
        "TXT",
        format!("_dmarc.{name}"),
        format!("v=DMARC1; p=none; rua={rua}"),
        false,
        None,
        Expect::Dmarc,
    );
    if tracks && let Some(host) = tracking_host(config) {
        push(
            "TRACKING",
            "CNAME",
            format!("track.{name}"),
            host.clone(),
            false,
            None,
            Expect::Cname { target: host },
        );
    }
    out
}

/// The SPF terms mailgate's mail needs: the egress addresses of direct delivery, then the
/// configured includes for upstream relays.
pub fn spf_terms(config: &Config) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for relay in config.relays.values().filter(|r| r.mx) {
        for egress in &relay.egress {
            let term = match egress.addr {
                std::net::IpAddr::V4(v4) => format!("ip4:{v4}"),
                std::net::IpAddr::V6(v6) => format!("ip6:{v6}"),
            };
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
    }
    for include in config.domains.spf_includes() {
        let term = format!("include:{include}");
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    terms
}

/// Where a record's last finding is kept in a domain's `checks`: `"DKIM mg1._domainkey.…"`.
pub fn check_key(record: &str, name: &str) -> String {
    format!("{record} {name}")
}

/// The return-path subdomain of `domain` with its label: `bounces.example.com`.
pub fn return_path_name(label: &str, domain: &str) -> String {
    format!("{label}.{domain}")
}

/// `k=` of a DKIM record for a key's algorithm.
fn dkim_key_type(algorithm: &str) -> &'static str {
    if algorithm.starts_with("ed25519") {
        "ed25519"
    } else {
        "rsa"
    }
}

/// The host a return-path MX points at: the inbound listener's name (`inbound.hostname`,
/// else `smtp.hostname`), when the listener is on and that name is a domain name.
pub fn return_path_host(config: &Config) -> Option<String> {
    config.inbound.addr?;
    let host = config
        .inbound
        .hostname
        .as_deref()
        .unwrap_or(&config.smtp.hostname)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    host.contains('.').then_some(host)
}

/// The host of `tracking.base_url`, which a tracking CNAME points at.
fn tracking_host(config: &Config) -> Option<String> {
    let base = config.tracking.base()?;
    url::Url::parse(base)
        .ok()?
        .host_str()
        .map(|h| h.to_ascii_lowercase())
}
