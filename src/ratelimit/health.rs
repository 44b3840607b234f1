//! Whether Redis answers the rate-limit checks: while it does not, checks skip it and one
//! call per `redis.retry_ms` probes it again. Warns once per interval, counts the fallbacks.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::redis::{RedisGcra, RedisTrouble};
use crate::config::{RateLimitConfig, RedisFailureMode};

enum Attempt {
    Normal,
    /// Redis was down; this call finds out whether it is back.
    Probe,
    Skip,
}

/// Whether Redis is answering. While it is not, calls skip it (no timeout to wait out on
/// every request) and one call per `redis.retry_ms` probes it again.
pub(super) struct RedisHealth {
    up: AtomicBool,
    down: Mutex<Option<Outage>>,
    pub(super) fallbacks: AtomicU64,
}

struct Outage {
    since: Instant,
    /// When the next probe may go (also when an unanswered one is given up on).
    retry_at: Instant,
    last_warning: Instant,
    fallbacks_at_warning: u64,
}

impl Default for RedisHealth {
    fn default() -> Self {
        metrics::gauge!("mailgate_ratelimit_redis_up").set(1.0);
        RedisHealth {
            up: AtomicBool::new(true),
            down: Mutex::new(None),
            fallbacks: AtomicU64::new(0),
        }
    }
}

impl RedisHealth {
    /// Whether to ask Redis now: not while it is down, except one probe per `redis.retry_ms`,
    /// made on a fresh connection (the old one may be stuck on a Redis that hung).
    pub(super) fn ready(&self, redis: &RedisGcra) -> bool {
        match self.attempt(redis.retry()) {
            Attempt::Skip => false,
            Attempt::Probe => {
                redis.reconnect();
                true
            }
            Attempt::Normal => true,
        }
    }

    /// Records how a call to Redis went: its value, or `None` after noting the failure
    /// (see [`Self::failed`]) so that the caller's fallback decides.
    pub(super) fn settle<T>(
        &self,
        result: Result<T, RedisTrouble>,
        redis: &RedisGcra,
        fallback: &str,
        warn_interval: Duration,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                self.succeeded();
                Some(value)
            }
            Err(err) => {
                self.failed(&err, fallback, warn_interval, redis.retry());
                None
            }
        }
    }

    /// A probe whose caller never reports back (it asked, then had nothing to send) expires
    /// after `retry`, so one unsettled probe cannot keep Redis skipped for ever: the limiter
    /// and the relay pacer share this health.
    fn attempt(&self, retry: Duration) -> Attempt {
        if self.up.load(Ordering::Acquire) {
            return Attempt::Normal;
        }
        let mut down = self.down.lock().expect("not poisoned");
        let now = Instant::now();
        match down.as_mut() {
            None => Attempt::Normal,
            Some(outage) if now >= outage.retry_at => {
                outage.retry_at = now + retry;
                Attempt::Probe
            }
            Some(_) => Attempt::Skip,
        }
    }

    fn succeeded(&self) {
        if self.up.load(Ordering::Acquire) {
            return;
        }
        let mut down = self.down.lock().expect("not poisoned");
        if let Some(outage) = down.take() {
            tracing::info!(
                after_secs = outage.since.elapsed().as_secs(),
                decided_locally =
                    self.fallbacks.load(Ordering::Relaxed) - outage.fallbacks_at_warning,
                "redis is reachable again; rate limits are shared again"
            );
        }
        self.up.store(true, Ordering::Release);
        metrics::gauge!("mailgate_ratelimit_redis_up").set(1.0);
    }

    /// What the rate limits do while Redis is down, for the warning.
    pub(super) fn fallback(config: &RateLimitConfig) -> &'static str {
        match config.on_redis_error {
            RedisFailureMode::FailOpen => "per-process limits decide",
            RedisFailureMode::FailClosed => "authenticated requests get 503",
        }
    }

    /// A call failed: warns (once per `warn_interval`) saying what `fallback` happens
    /// meanwhile, and skips Redis until `retry` has passed.
    fn failed(
        &self,
        error: &dyn std::fmt::Display,
        fallback: &str,
        warn_interval: Duration,
        retry: Duration,
    ) {
        metrics::counter!("mailgate_ratelimit_redis_errors_total").increment(1);
        let now = Instant::now();
        let fallbacks = self.fallbacks.load(Ordering::Relaxed);
        let mut down = self.down.lock().expect("not poisoned");
        match down.as_mut() {
            None => {
                tracing::warn!(error = %error, "redis unreachable; {fallback} until it is back");
                *down = Some(Outage {
                    since: now,
                    retry_at: now + retry,
                    last_warning: now,
                    fallbacks_at_warning: fallbacks,
                });
            }
            Some(outage) => {
                // One line per interval, however many requests fail meanwhile.
                if now.duration_since(outage.last_warning) >= warn_interval {
                    tracing::warn!(
                        error = %error,
                        down_secs = outage.since.elapsed().as_secs(),
                        decided_without_redis = fallbacks - outage.fallbacks_at_warning,
                        "redis still unreachable; {fallback}"
                    );
                    outage.last_warning = now;
                    outage.fallbacks_at_warning = fallbacks;
                }
                outage.retry_at = now + retry;
            }
        }
        self.up.store(false, Ordering::Release);
        metrics::gauge!("mailgate_ratelimit_redis_up").set(0.0);
    }

    pub(super) fn fell_back(&self, mode: RedisFailureMode) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let mode = match mode {
            RedisFailureMode::FailOpen => "fail_open",
            RedisFailureMode::FailClosed => "fail_closed",
        };
        metrics::counter!("mailgate_ratelimit_fallback_total", "mode" => mode).increment(1);
    }
}
