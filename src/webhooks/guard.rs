//! The SSRF guard: webhook targets must be public HTTP(S) addresses.
//!
//! A URL is checked when an endpoint is created or changed (to answer 422 at once) and again
//! on every request, because DNS can change in between. At send time the check lives in the
//! HTTP client's resolver, so the address checked is the address connected to: a name that
//! resolves to a public address for the check and a private one for the connection (DNS
//! rebinding) cannot slip through.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
};

/// Longest a name lookup may take when an endpoint is created or changed.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Invalid(String),
    #[error("`{host}` does not resolve{why}")]
    Unresolvable { host: String, why: String },
    #[error("{} {kind} address; webhook targets must be public", what(host, ip))]
    NotPublic {
        host: String,
        ip: IpAddr,
        kind: &'static str,
    },
}

/// "`host` resolves to ip, a", or "ip is a" for an IP literal.
fn what(host: &str, ip: &IpAddr) -> String {
    if host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok()
    {
        format!("{ip} is a")
    } else {
        format!("`{host}` resolves to {ip}, a")
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn non_public_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => {
            // IPv4 in IPv6 clothing (mapped ::ffff:a.b.c.d and NAT64 64:ff9b::a.b.c.d) is
            // judged by the IPv4 address it reaches.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_kind(v4);
            }
            let seg = v6.segments();
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = seg[6].to_be_bytes();
                let [c, d] = seg[7].to_be_bytes();
                return v4_kind(Ipv4Addr::new(a, b, c, d));
            }
            v6_kind(v6)
        }
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // 100.64/10 is carrier-grade NAT: private in all but name.
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast()
        || a >= 240
        || ip.is_documentation()
        // IETF protocol assignments (192.0.0/24) and benchmarking (198.18/15).
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b & 0xfe) == 18)
    {
        Some("reserved")
    } else {
        None
    }
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfec0 {
        // Unique local (fc00::/7) and the old site-local (fec0::/10).
        Some("private")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("reserved")
    } else {
        None
    }
}

/// Checks a URL's shape: absolute http(s), a host, no credentials, bounded length.
pub fn parse_url(raw: &str) -> Result<Url, TargetError> {
    if raw.len() > MAX_URL_LEN {
        return Err(TargetError::Invalid(format!(
            "is longer than {MAX_URL_LEN} characters"
        )));
    }
    let url = Url::parse(raw.trim())
        .map_err(|e| TargetError::Invalid(format!("is not an absolute URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Invalid(
            "must be an http:// or https:// URL".into(),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(TargetError::Invalid("has no host".into()));
    }
    // Credentials would be stored and shown in clear: the signature authenticates instead.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Invalid(
            "must not contain a user name or password".into(),
        ));
    }
    Ok(url)
}

/// The URL without its user name and password, and those (percent-decoded) when it has them.
pub fn split_credentials(raw: &str) -> (String, Option<(String, String)>) {
    match url::Url::parse(raw.trim()) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let user = percent_decode(url.username());
            let password = percent_decode(url.password().unwrap_or_default());
            let _ = url.set_username("");
            let _ = url.set_password(None);
            (url.to_string(), Some((user, password)))
        }
        _ => (raw.to_string(), None),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Refuses or allows the addresses a host resolved to. Every address must be public: a
/// resolver returning one private address among public ones is refused as a whole.
fn check_addrs(host: &str, addrs: &[SocketAddr], allow_private: bool) -> Result<(), TargetError> {
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable {
            host: host.to_string(),
            why: String::new(),
        });
    }
    if allow_private {
        return Ok(());
    }
    for addr in addrs {
        if let Some(kind) = non_public_kind(addr.ip()) {
            return Err(TargetError::NotPublic {
                host: host.to_string(),
                ip: addr.ip(),
                kind,
            });
        }
    }
    Ok(())
}

/// The host of a URL as an IP literal, if it is one (`[::1]` included).
fn ip_literal(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Checks an IP-literal URL, which the HTTP client connects to without asking its resolver.
pub fn check_literal(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    match ip_literal(url) {
        Some(ip) => check_addrs(
            url.host_str().unwrap_or_default(),
            &[SocketAddr::new(ip, 0)],
            allow_private,
        ),
        None => Ok(()),
    }
}

/// The full check at create and update time: shape, then every resolved address.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<Url, TargetError> {
    let url = parse_url(raw)?;
    if ip_literal(&url).is_some() {
        check_literal(&url, allow_private)?;
        return Ok(url);
    }
    let host = url.host_str().unwrap_or_default().to_string();
    let addrs = resolve(&host).await?;
    check_addrs(&host, &addrs, allow_private)?;
    Ok(url)
}

async fn resolve(host: &str) -> Result<Vec<SocketAddr>, TargetError> {
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0))).await {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(e)) => Err(TargetError::Unresolvable {
            host: host.to_string(),
            why: format!(": {e}"),
        }),
        Err(_) => Err(TargetError::Unresolvable {
            host: host.to_string(),
            why: " in time".into(),
        }),
    }
}

/// The HTTP client's resolver: resolves, then refuses non-public addresses, so the client
/// only ever connects to an address that passed the check.
#[derive(Clone)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs = resolve(&host).await?;
            check_addrs(&host, &addrs, allow_private)?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

impl GuardedResolver {
    pub fn shared(allow_private: bool) -> Arc<Self> {
        Arc::new(Self { allow_private })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for (ip, kind) in [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            ("100.64.0.1", Some("private")),
            ("169.254.169.254", Some("link-local")),
            ("224.0.0.1", Some("multicast")),
            ("0.0.0.0", Some("unspecified")),
            ("255.255.255.255", Some("reserved")),
            ("::1", Some("loopback")),
            ("::", Some("unspecified")),
            ("fe80::1", Some("link-local")),
            ("fd00::1", Some("private")),
            ("ff02::1", Some("multicast")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:10.0.0.1", Some("private")),
            ("64:ff9b::a9fe:a9fe", Some("link-local")),
            ("93.184.216.34", None),
            ("2606:4700::1111", None),
            ("8.8.8.8", None),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(non_public_kind(ip), kind, "{ip}");
        }
    }

    #[test]
    fn urls_must_be_plain_http() {
        assert!(parse_url("https://hooks.example.com/x?y=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "http://user:pw@example.com/",
            "file:///etc/passwd",
            "",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} was accepted");
        }
    }

    #[tokio::test]
    async fn refuses_private_literals_and_names() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost/",
        ] {
            assert!(
                matches!(
                    check_url(url, false).await,
                    Err(TargetError::NotPublic { .. })
                ),
                "{url}"
            );
            assert!(check_url(url, true).await.is_ok(), "{url}");
        }
    }
}
