//! The client's address behind the proxies the operator trusts (`http.trusted_proxies`).
//!
//! A TLS-terminating proxy or load balancer connects on behalf of every browser and app, so
//! the peer address of the socket is the proxy's: a throttle keyed by it would lock everybody
//! out after one client's guessing. The proxy names the client in `X-Forwarded-For`, each hop
//! appending the address it saw; only the hops the operator trusts are believed. The header
//! is read from the right: the peer, then each entry added by a trusted proxy, until the first
//! address that is not a trusted proxy, which is the client. Entries to the left of it were
//! written by the client itself and are never believed. A peer that is no trusted proxy is
//! the client, whatever its header says.

use std::{net::IpAddr, sync::Arc};

use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed. Empty (the default): none, the peer is
/// the client.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets: nets.into() }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer` (the socket's), or, when `peer` is a trusted proxy, the
    /// rightmost address in `forwarded_for` (the `X-Forwarded-For` header lines, in order)
    /// that is not one. An entry that is no address stops the walk at the trusted hop that
    /// passed it on: the throttle then counts against that proxy, as it would without the
    /// header, never against an address a client made up.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut client = peer.to_canonical();
        if self.nets.is_empty() || !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) => client = ip.to_canonical(),
                None => break,
            }
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, perhaps with a port (`192.0.2.7:4711`,
/// `[2001:db8::1]:4711`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.5"), ["198.51.100.7"]),
            ip("10.0.0.5")
        );
        let lb = proxies(&["10.0.0.0/24"]);
        // From the proxy: the address it saw.
        assert_eq!(
            lb.client(ip("10.0.0.5"), ["198.51.100.7"]),
            ip("198.51.100.7")
        );
        // A client's own entries, left of what the proxy appended, are not believed.
        assert_eq!(
            lb.client(ip("10.0.0.5"), ["203.0.113.1, 198.51.100.7"]),
            ip("198.51.100.7")
        );
        // Two trusted hops, over two header lines.
        assert_eq!(
            lb.client(ip("10.0.0.5"), ["203.0.113.1, 198.51.100.7", "10.0.0.9"]),
            ip("198.51.100.7")
        );
        // Not from a trusted proxy: the header is the client's word, ignored.
        assert_eq!(
            lb.client(ip("198.51.100.7"), ["10.0.0.1"]),
            ip("198.51.100.7")
        );
        // No header, or garbage in it: the proxy itself.
        assert_eq!(lb.client(ip("10.0.0.5"), []), ip("10.0.0.5"));
        assert_eq!(
            lb.client(ip("10.0.0.5"), ["203.0.113.1, unknown"]),
            ip("10.0.0.5")
        );
        // Ports, IPv6 and IPv4 seen through a dual-stack socket.
        assert_eq!(
            lb.client(ip("::ffff:10.0.0.5"), ["[2001:db8::1]:4711"]),
            ip("2001:db8::1")
        );
        assert_eq!(
            lb.client(ip("10.0.0.5"), ["198.51.100.7:5555"]),
            ip("198.51.100.7")
        );
    }
}
