//! Limits per client address, as anonymous endpoints need them (the inbound SMTP listener,
//! the open and click endpoints): what counts as one client, and a per-process limiter keyed
//! by it that forgets idle clients.

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock, Reference},
    middleware::NoOpMiddleware,
    state::keyed::HashMapStateStore,
};

/// The part of a client's address a per-address limit counts: an IPv4 address as it is, an
/// IPv6 address by the /64 it is in. One host or customer line is usually given a whole
/// /64, so counting single IPv6 addresses would hand one client 2^64 allowances.
pub fn client_prefix(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// So many units per client (by [`client_prefix`]) and minute, in a burst too, per process.
/// Clients whose allowance is whole again are forgotten at most once a minute, so the map
/// holds only the clients of about the last minute, however many came before.
pub struct PerAddress<C: Clock = DefaultClock> {
    limiter: RateLimiter<IpAddr, HashMapStateStore<IpAddr>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    start: C::Instant,
    /// Nanoseconds after `start` of the last pruning.
    pruned_at: AtomicU64,
}

/// How often forgotten clients are dropped: a full allowance never takes longer to come back.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl PerAddress {
    pub fn per_minute(units: NonZeroU32) -> Self {
        Self::with_clock(units, DefaultClock::default())
    }
}

impl<C: Clock + Clone> PerAddress<C> {
    pub fn with_clock(units: NonZeroU32, clock: C) -> Self {
        let start = clock.now();
        Self {
            limiter: RateLimiter::hashmap_with_clock(Quota::per_minute(units), clock.clone()),
            clock,
            start,
            pruned_at: AtomicU64::new(0),
        }
    }

    /// Takes one unit of `ip`'s client; false when it has none left.
    pub fn check(&self, ip: IpAddr) -> bool {
        self.prune_now_and_then();
        self.limiter.check_key(&client_prefix(ip)).is_ok()
    }

    /// Clients tracked right now.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    fn prune_now_and_then(&self) {
        let now = self.clock.now().duration_since(self.start).as_u64();
        let last = self.pruned_at.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= PRUNE_EVERY.as_nanos() as u64;
        // One caller prunes; the others go on.
        if due
            && self
                .pruned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_by_its_64_and_ipv4_by_itself() {
        assert_eq!(
            client_prefix(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(client_prefix(ip("192.0.2.7")), ip("192.0.2.7"));
        // An IPv4 client seen on a dual-stack socket is its IPv4 address.
        assert_eq!(client_prefix(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));

        let limit = PerAddress::per_minute(NonZeroU32::new(2).unwrap());
        assert!(limit.check(ip("2001:db8:1:2::1")));
        assert!(limit.check(ip("2001:db8:1:2::ffff:1")));
        assert!(
            !limit.check(ip("2001:db8:1:2:ffff::9")),
            "a third address of the same /64 shares its allowance"
        );
        assert!(
            limit.check(ip("2001:db8:1:3::1")),
            "the next /64 is another client"
        );
        assert!(limit.check(ip("192.0.2.1")) && limit.check(ip("192.0.2.1")));
        assert!(!limit.check(ip("192.0.2.1")));
        assert!(limit.check(ip("192.0.2.2")));
    }

    #[test]
    fn idle_clients_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let limit = PerAddress::with_clock(NonZeroU32::new(10).unwrap(), clock.clone());
        for n in 0..1000u32 {
            assert!(limit.check(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))));
        }
        assert_eq!(limit.len(), 1000);
        clock.advance(Duration::from_secs(61));
        // The next check prunes every client whose allowance came back in full.
        assert!(limit.check(ip("192.0.2.1")));
        assert_eq!(limit.len(), 1, "only the client just seen is kept");
        // A client still short of allowance is kept through the next pruning; one whose
        // allowance came back is not.
        clock.advance(Duration::from_secs(39));
        for _ in 0..10 {
            limit.check(ip("192.0.2.2"));
        }
        clock.advance(Duration::from_secs(21));
        assert!(limit.check(ip("192.0.2.3")));
        assert_eq!(limit.len(), 2, "192.0.2.2 and 192.0.2.3");
        let left = (0..10).filter(|_| limit.check(ip("192.0.2.2"))).count();
        assert_eq!(left, 3, "its count was kept: 21 s gave back 3 of 10");
    }
}
