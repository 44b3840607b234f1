//! Failed authentications per client IP, so keys cannot be guessed at speed. One throttle
//! for every way in: HTTP calls it around authentication, the SMTP listener around `AUTH`
//! (`check(ip)` before looking at credentials, `failed(ip)` after refusing them), each with
//! its own allowance from config.
//!
//! A client is an IPv4 address or the /64 an IPv6 address is in ([`client_prefix`]): one
//! host commonly holds a whole /64, and counting each address apart would give a guesser
//! 2^64 allowances.
//!
//! Per process on purpose: it must keep working when Redis does not, and a guesser spread
//! over N processes still gets at most N times the allowance, against keys of 40 random
//! alphanumerics.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::address::client_prefix;
use governor::{
    Quota, RateLimiter, clock::DefaultClock, middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

type Failures =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock, StateInformationMiddleware>;

/// Beyond this many tracked addresses, forgotten ones are dropped.
const PRUNE_AT: usize = 10_000;
/// Longest period or lockout: an absurd configured value must not overflow the clock.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Clone)]
pub struct AuthThrottle {
    /// `None`: throttling is off.
    inner: Option<Arc<Inner>>,
}

struct Inner {
    failures: Failures,
    /// Addresses out of allowance, until when. Checked before any key is looked at.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// One failure's worth of allowance comes back after this long.
    interval: Duration,
    /// How long an address out of allowance is refused; `None`: until one failure's worth
    /// of allowance is back.
    lockout: Option<Duration>,
}

impl AuthThrottle {
    /// Allows `failures` failed authentications per address within `per` (in a burst, too).
    /// Past them the address is refused for `lockout`, or, without one, until the allowance
    /// for one more failure is back. No failures or no period: no throttle.
    pub fn new(failures: u32, per: Duration, lockout: Option<Duration>) -> Self {
        let Some(failures) = NonZeroU32::new(failures) else {
            return Self { inner: None };
        };
        let Some(quota) = Quota::with_period(per.min(LONGEST) / failures.get()) else {
            return Self { inner: None };
        };
        let quota = quota.allow_burst(failures);
        Self {
            inner: Some(Arc::new(Inner {
                failures: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
                blocked: Mutex::new(HashMap::new()),
                interval: quota.replenish_interval(),
                lockout: lockout.map(|l| l.min(LONGEST)),
            })),
        }
    }

    /// `per_minute` failures per address and minute; an address past them waits for the
    /// allowance of one more. 0: no limit.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute, Duration::from_secs(60), None)
    }

    /// `Err(wait)` when `ip` has used up its failures: refuse before checking credentials.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let ip = client_prefix(ip);
        let blocked = inner.blocked.lock().expect("not poisoned");
        match blocked.get(&ip) {
            Some(until) => {
                let wait = until.saturating_duration_since(Instant::now());
                if wait.is_zero() { Ok(()) } else { Err(wait) }
            }
            None => Ok(()),
        }
    }

    /// Records a failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let Some(inner) = &self.inner else {
            return;
        };
        let ip = client_prefix(ip);
        metrics::counter!("mailgate_auth_failures_total").increment(1);
        let now = Instant::now();
        // The limiter counts; `blocked` remembers the result, since the limiter cannot be
        // asked without being charged.
        let until = match inner.failures.check_key(&ip) {
            Ok(snapshot) if snapshot.remaining_burst_capacity() == 0 => {
                Some(now + inner.lockout.unwrap_or(inner.interval))
            }
            Ok(_) => None,
            Err(not_until) => Some(
                now + inner.lockout.unwrap_or_else(|| {
                    not_until
                        .wait_time_from(governor::clock::Clock::now(&DefaultClock::default()))
                        .max(inner.interval)
                }),
            ),
        };
        let mut blocked = inner.blocked.lock().expect("not poisoned");
        if let Some(until) = until {
            if !blocked.contains_key(&ip) {
                tracing::warn!(%ip, "too many failed authentications; refusing this address for a while");
                metrics::counter!("mailgate_auth_throttled_total").increment(1);
            }
            blocked.insert(ip, until);
        }
        if blocked.len() > PRUNE_AT {
            blocked.retain(|_, until| *until > now);
        }
        if inner.failures.len() > PRUNE_AT {
            inner.failures.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_an_address_after_its_failures_and_no_other() {
        let throttle = AuthThrottle::per_minute(3);
        let guesser: IpAddr = "192.0.2.1".parse().unwrap();
        let bystander: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..2 {
            throttle.failed(guesser);
            assert!(throttle.check(guesser).is_ok());
        }
        throttle.failed(guesser);
        let wait = throttle.check(guesser).unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20));
        assert!(throttle.check(bystander).is_ok());
    }

    #[test]
    fn a_lockout_holds_for_its_whole_length() {
        let throttle =
            AuthThrottle::new(3, Duration::from_secs(300), Some(Duration::from_secs(300)));
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..2 {
            throttle.failed(ip);
        }
        assert!(throttle.check(ip).is_ok());
        throttle.failed(ip);
        let wait = throttle.check(ip).unwrap_err();
        assert!(wait > Duration::from_secs(299) && wait <= Duration::from_secs(300));
    }

    #[test]
    fn an_ipv6_host_is_its_64() {
        let throttle = AuthThrottle::new(2, Duration::from_secs(60), None);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        throttle.failed(a);
        throttle.failed(same_64);
        assert!(throttle.check(a).is_err());
        assert!(throttle.check(same_64).is_err());
        assert!(throttle.check(next_64).is_ok());
    }

    #[test]
    fn zero_turns_it_off() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for throttle in [
            AuthThrottle::per_minute(0),
            AuthThrottle::new(5, Duration::ZERO, None),
        ] {
            for _ in 0..100 {
                throttle.failed(ip);
            }
            assert!(throttle.check(ip).is_ok());
        }
    }
}
