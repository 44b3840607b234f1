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
    /// What it is for: `DKIM`, `SPF`, `DMARC` or `TRACKING`.
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
}

/// A record with what its check expects.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub record: Record,
    pub expect: Expect,
}

/// The records of `name` for its keys (the active one first; a pending one after a
/// rotation) under `config`, with the last check's findings (`checks`, by record name).
pub fn wanted(
    config: &Config,
    name: &str,
    keys: &[KeyRow],
    dmarc_rua: Option<&str>,
    tracks: bool,
    checks: &Value,
) -> Vec<Wanted> {
    let mut out = Vec::new();
    let mut push = |record: &str,
                    kind: &str,
                    rr_name: String,
                    value: String,
                    required: bool,
                    expect: Expect| {
        let key = format!("{record} {rr_name}");
        let found = &checks[&key];
        out.push(Wanted {
            record: Record {
                record: record.into(),
                kind: kind.into(),
                name: rr_name,
                value,
                ttl: TTL,
                priority: None,
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
            format!("v=DKIM1; k=rsa; p={}", key.public_key),
            key.state == "active",
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
            Expect::Spf { terms },
        );
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
        Expect::Dmarc,
    );
    if tracks && let Some(host) = tracking_host(config) {
        push(
            "TRACKING",
            "CNAME",
            format!("track.{name}"),
            host.clone(),
            false,
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

/// The host of `tracking.base_url`, which a tracking CNAME points at.
fn tracking_host(config: &Config) -> Option<String> {
    let base = config.tracking.base()?;
    url::Url::parse(base)
        .ok()?
        .host_str()
        .map(|h| h.to_ascii_lowercase())
}
