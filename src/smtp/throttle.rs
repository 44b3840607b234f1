//! Slows down password guessing: failed AUTH attempts counted per client IP, with a lockout.
//!
//! Self-contained and per process on purpose, so it can be swapped for the shared auth
//! throttle of the HTTP side without touching the session code: the session only calls
//! `check` before verifying a password and `failed` after a wrong one.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Beyond this many tracked addresses, stale entries are dropped; if that is not enough the
/// table is cleared, so a flood of source addresses cannot grow memory without bound.
const MAX_TRACKED: usize = 50_000;

pub struct AuthThrottle {
    max_failures: u32,
    window: Duration,
    by_ip: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    /// The window restarts when a failure comes after it has passed.
    first: Instant,
    locked_until: Option<Instant>,
}

impl AuthThrottle {
    /// After `max_failures` failures within `window`, the address is locked out for `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            // Capped, so an absurd configured window cannot overflow the clock.
            window: window.min(Duration::from_secs(365 * 24 * 3600)),
            by_ip: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(ip, Instant::now())
    }

    /// Records a wrong password from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        self.failed_at(ip, Instant::now());
    }

    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let map = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&ip).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) {
        let mut map = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            let window = self.window;
            map.retain(|_, f| !f.expired(now, window));
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert(Failures {
            count: 0,
            first: now,
            locked_until: None,
        });
        if entry.expired(now, self.window) {
            *entry = Failures {
                count: 0,
                first: now,
                locked_until: None,
            };
        }
        entry.count += 1;
        if entry.count >= self.max_failures {
            entry.locked_until = Some(now + self.window);
        }
    }
}

impl Failures {
    fn expired(&self, now: Instant, window: Duration) -> bool {
        let locked = self.locked_until.is_some_and(|until| until > now);
        !locked && now.duration_since(self.first) >= window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_repeated_failures_then_forgets() {
        let t = AuthThrottle::new(3, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let start = Instant::now();
        t.failed_at(ip, start);
        t.failed_at(ip, start);
        assert!(t.check_at(ip, start).is_ok());
        t.failed_at(ip, start);
        let wait = t.check_at(ip, start + Duration::from_secs(1)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(59));
        assert!(t.check_at(other, start).is_ok());
        assert!(t.check_at(ip, start + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = AuthThrottle::new(2, Duration::from_secs(10));
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let start = Instant::now();
        t.failed_at(ip, start);
        t.failed_at(ip, start + Duration::from_secs(11));
        assert!(t.check_at(ip, start + Duration::from_secs(11)).is_ok());
    }
}
