//! Rate limits: who may do how much, how fast.
//!
//! This folder owns the [`Limiter`] every intake path asks before it accepts work (HTTP
//! requests, each message of a batch, later each SMTP submission), the [`Decision`] it answers
//! (limit, remaining, reset, retry-after: what the `RateLimit-*` headers say), the [`Refusal`]s,
//! and the [`AuthThrottle`] that slows down key guessing per client IP.
//!
//! Each key has two buckets: `send` (one unit per message; rate, burst and an optional quota
//! per UTC day, from the key or the config) and `api` (one unit per other request, a looser
//! config-wide default). With `redis_url` set the buckets live in Redis, decided by one Lua
//! GCRA script ([`redis`]) on Redis's clock, so every mailgate process shares them. Without
//! Redis, or while Redis is unreachable and `on_redis_error = "fail_open"`, a per-process
//! governor limiter ([`local`]) decides instead.

mod auth;
mod local;
mod redis;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use auth::AuthThrottle;

use crate::{
    config::{Config, RateLimitConfig, RedisFailureMode, redact_url},
    domain::api_key::KeyLimits,
};

/// Which bucket a unit is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Messages, one unit each, whatever way they come in.
    Send,
    /// Every other authenticated request.
    Api,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Send => "send",
            Class::Api => "api",
        }
    }
}

/// The bucket (and quota) a check is made against, resolved from config and key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub class: Class,
    /// Microseconds between two units at the sustained rate.
    pub interval_us: u64,
    pub burst: u32,
    pub quota: Option<u64>,
    pub quota_period_secs: u64,
}

impl Params {
    /// The `RateLimit-Policy` value: the burst per the time it takes to refill, then the quota.
    pub fn policy(&self) -> String {
        let refill_us = self.interval_us.saturating_mul(self.burst.into());
        let window = refill_us.div_ceil(1_000_000).max(1);
        let mut policy = format!("{};w={}", self.burst, window);
        if let Some(quota) = self.quota {
            policy.push_str(&format!(", {};w={}", quota, self.quota_period_secs));
        }
        policy
    }
}

/// What a backend found, before it is turned into a [`Decision`] or a [`Refusal`].
#[derive(Debug, Clone, Copy)]
struct Outcome {
    verdict: Verdict,
    /// Units left in the bucket (after the charge, when allowed).
    remaining: u64,
    /// Until the bucket is full again.
    reset: Duration,
    /// Until the units asked for would fit (rate limited only).
    retry_after: Duration,
    /// Quota units used in the current period (including this charge, when allowed).
    quota_used: u64,
    /// Until the current quota period ends.
    quota_reset: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Limited,
    OverQuota,
}

/// The state of the limit that is closest to running out, for the `RateLimit-*` headers.
#[derive(Debug, Clone)]
pub struct Decision {
    pub limit: u64,
    pub remaining: u64,
    /// Until `remaining` is back at `limit`.
    pub reset: Duration,
    /// Set on refusals: how long until retrying can succeed.
    pub retry_after: Option<Duration>,
    pub params: Params,
}

impl Decision {
    fn new(params: Params, o: &Outcome) -> Self {
        let mut d = Decision {
            limit: params.burst.into(),
            remaining: o.remaining,
            reset: o.reset,
            retry_after: (o.verdict == Verdict::Limited).then_some(o.retry_after),
            params,
        };
        if let Some(quota) = params.quota {
            let left = quota.saturating_sub(o.quota_used);
            if o.verdict == Verdict::OverQuota || left < d.remaining {
                d.limit = quota;
                d.remaining = left;
                d.reset = o.quota_reset;
            }
            if o.verdict == Verdict::OverQuota {
                d.retry_after = Some(o.quota_reset);
            }
        }
        d
    }

    /// Whole seconds until the limit is full again, as `RateLimit-Reset` says it.
    pub fn reset_secs(&self) -> u64 {
        ceil_secs(self.reset)
    }

    /// Whole seconds for `Retry-After`: rounded up, and never 0 so clients do wait.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| ceil_secs(d).max(1))
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_micros().div_ceil(1_000_000) as u64
}

/// Why a check said no.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// Too fast: retry after `decision.retry_after`.
    RateLimited(Decision),
    /// The key's quota for the period is used up until `resets_at`.
    QuotaExceeded {
        decision: Decision,
        resets_at: DateTime<Utc>,
    },
    /// More units at once than the bucket can ever hold.
    TooLarge { units: u32, burst: u32 },
    /// Redis is unreachable and the config says to fail closed.
    Unavailable,
}

/// The rate limiter of one process; cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    /// `None`: limits are switched off.
    inner: Option<Arc<Inner>>,
}

struct Inner {
    config: RateLimitConfig,
    local: local::LocalLimiter,
    shared: Option<Shared>,
}

/// The Redis backend and what is known of its health.
struct Shared {
    redis: redis::RedisGcra,
    health: Health,
    mode: RedisFailureMode,
    url: String,
    prefix: String,
}

/// What `/readyz` says about rate limits.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `redis`, `local` (per-process governor) or `off`.
    pub backend: &'static str,
    /// `up` or `down`, with a Redis backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<&'static str>,
    /// Checks decided without Redis because it was unreachable, since start.
    pub fallbacks: u64,
    /// False when Redis is down and the config says to fail closed.
    #[serde(skip)]
    pub serving: bool,
}

impl Limiter {
    /// Builds the limiter; a Redis backend connects lazily, so an unreachable Redis does not
    /// keep mailgate from starting.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        if !config.ratelimit.enabled {
            return Ok(Limiter { inner: None });
        }
        let shared = match &config.redis_url {
            Some(url) => Some(Shared {
                redis: redis::RedisGcra::new(url, &config.redis)?,
                health: Health::default(),
                mode: config.ratelimit.on_redis_error,
                url: redact_url(url),
                prefix: config.redis.key_prefix.clone(),
            }),
            None => None,
        };
        Ok(Limiter {
            inner: Some(Arc::new(Inner {
                config: config.ratelimit.clone(),
                local: local::LocalLimiter::default(),
                shared,
            })),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The backend, for the start-up log line.
    pub fn describe(&self) -> String {
        match &self.inner {
            None => "off".into(),
            Some(inner) => match &inner.shared {
                Some(s) => format!(
                    "redis {} (prefix {}, {})",
                    s.url,
                    s.prefix,
                    match s.mode {
                        RedisFailureMode::FailOpen => "fail_open",
                        RedisFailureMode::FailClosed => "fail_closed",
                    }
                ),
                None => "per-process governor (no redis_url: limits are not shared)".into(),
            },
        }
    }

    /// The bucket a key's units of `class` go to.
    pub fn params(&self, class: Class, limits: &KeyLimits) -> Option<Params> {
        let config = &self.inner.as_ref()?.config;
        let (rate, burst, quota) = match class {
            Class::Send => (
                limits.rate_per_sec.unwrap_or(config.send.rate_per_sec),
                limits.burst.unwrap_or(config.send.burst),
                limits.daily_quota.or(config.send.daily_quota),
            ),
            Class::Api => (config.api.rate_per_sec, config.api.burst, None),
        };
        Some(Params {
            class,
            interval_us: ((1_000_000.0 / rate).round() as u64).max(1),
            burst: burst.max(1),
            quota,
            quota_period_secs: config.quota_period_secs,
        })
    }

    /// Charges `units` of `class` to `subject` (a key id; the nil id is the operator).
    /// `Ok(None)`: limits are off, or there was nothing to charge.
    pub async fn check(
        &self,
        subject: Uuid,
        limits: &KeyLimits,
        class: Class,
        units: u32,
    ) -> Result<Option<Decision>, Refusal> {
        let Some(inner) = &self.inner else {
            return Ok(None);
        };
        let Some(params) = self.params(class, limits) else {
            return Ok(None);
        };
        if units == 0 {
            return Ok(None);
        }
        if units > params.burst {
            metrics::counter!("mailgate_ratelimit_refused_total", "code" => "too_large")
                .increment(1);
            return Err(Refusal::TooLarge {
                units,
                burst: params.burst,
            });
        }
        let outcome = match &inner.shared {
            None => inner.local.check(subject, &params, units),
            Some(shared) => match shared.check(subject, &params, units, &inner.config).await {
                Some(outcome) => outcome,
                None => {
                    shared.health.fell_back(shared.mode);
                    match shared.mode {
                        RedisFailureMode::FailClosed => return Err(Refusal::Unavailable),
                        RedisFailureMode::FailOpen => inner.local.check(subject, &params, units),
                    }
                }
            },
        };
        let decision = Decision::new(params, &outcome);
        match outcome.verdict {
            Verdict::Allowed => {
                metrics::counter!("mailgate_ratelimit_allowed_total").increment(1);
                Ok(Some(decision))
            }
            Verdict::Limited => {
                metrics::counter!("mailgate_ratelimit_refused_total", "code" => "rate_limited")
                    .increment(1);
                Err(Refusal::RateLimited(decision))
            }
            Verdict::OverQuota => {
                metrics::counter!("mailgate_ratelimit_refused_total", "code" => "quota_exceeded")
                    .increment(1);
                let resets_at = Utc::now()
                    + chrono::Duration::from_std(outcome.quota_reset).unwrap_or_default();
                Err(Refusal::QuotaExceeded {
                    decision,
                    resets_at,
                })
            }
        }
    }

    /// The backend's state; with Redis, asks it (bounded by `redis.timeout_ms`) unless it
    /// failed less than `redis.retry_ms` ago.
    pub async fn status(&self) -> Status {
        let Some(inner) = &self.inner else {
            return Status {
                backend: "off",
                redis: None,
                fallbacks: 0,
                serving: true,
            };
        };
        let Some(shared) = &inner.shared else {
            return Status {
                backend: "local",
                redis: None,
                fallbacks: 0,
                serving: true,
            };
        };
        // Probes like a request does, so readiness checks alone bring a process back.
        let up = match shared.health.attempt() {
            Attempt::Skip => false,
            attempt => {
                if let Attempt::Probe = attempt {
                    shared.redis.reconnect();
                }
                match shared.redis.ping().await {
                    Ok(()) => {
                        shared.health.succeeded();
                        true
                    }
                    Err(err) => {
                        shared
                            .health
                            .failed(&err, &inner.config, shared.redis.retry());
                        false
                    }
                }
            }
        };
        Status {
            backend: "redis",
            redis: Some(if up { "up" } else { "down" }),
            fallbacks: shared.health.fallbacks.load(Ordering::Relaxed),
            serving: up || shared.mode == RedisFailureMode::FailOpen,
        }
    }
}

impl Shared {
    /// Asks Redis, unless it recently failed; `None` means the fallback must decide.
    async fn check(
        &self,
        subject: Uuid,
        params: &Params,
        units: u32,
        config: &RateLimitConfig,
    ) -> Option<Outcome> {
        match self.health.attempt() {
            Attempt::Skip => return None,
            // A fresh connection: the old one may be stuck on a Redis that hung.
            Attempt::Probe => self.redis.reconnect(),
            Attempt::Normal => {}
        }
        match self.redis.check(subject, params, units).await {
            Ok(outcome) => {
                self.health.succeeded();
                Some(outcome)
            }
            Err(err) => {
                self.health.failed(&err, config, self.redis.retry());
                None
            }
        }
    }
}

enum Attempt {
    Normal,
    /// Redis was down; this call finds out whether it is back.
    Probe,
    Skip,
}

/// Whether Redis is answering. While it is not, calls skip it (no timeout to wait out on
/// every request) and one call per `redis.retry_ms` probes it again.
struct Health {
    up: AtomicBool,
    down: Mutex<Option<Outage>>,
    fallbacks: AtomicU64,
}

struct Outage {
    since: Instant,
    retry_at: Instant,
    probing: bool,
    last_warning: Instant,
    fallbacks_at_warning: u64,
}

impl Default for Health {
    fn default() -> Self {
        metrics::gauge!("mailgate_ratelimit_redis_up").set(1.0);
        Health {
            up: AtomicBool::new(true),
            down: Mutex::new(None),
            fallbacks: AtomicU64::new(0),
        }
    }
}

impl Health {
    fn attempt(&self) -> Attempt {
        if self.up.load(Ordering::Acquire) {
            return Attempt::Normal;
        }
        let mut down = self.down.lock().expect("not poisoned");
        match down.as_mut() {
            None => Attempt::Normal,
            Some(outage) if !outage.probing && Instant::now() >= outage.retry_at => {
                outage.probing = true;
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

    fn failed(&self, error: &dyn std::fmt::Display, config: &RateLimitConfig, retry: Duration) {
        metrics::counter!("mailgate_ratelimit_redis_errors_total").increment(1);
        let now = Instant::now();
        let fallbacks = self.fallbacks.load(Ordering::Relaxed);
        let mut down = self.down.lock().expect("not poisoned");
        let fallback = match config.on_redis_error {
            RedisFailureMode::FailOpen => "per-process limits decide",
            RedisFailureMode::FailClosed => "authenticated requests get 503",
        };
        match down.as_mut() {
            None => {
                tracing::warn!(error = %error, "redis unreachable for rate limits; {fallback} until it is back");
                *down = Some(Outage {
                    since: now,
                    retry_at: now + retry,
                    probing: false,
                    last_warning: now,
                    fallbacks_at_warning: fallbacks,
                });
            }
            Some(outage) => {
                // One line per interval, however many requests fail meanwhile.
                if now.duration_since(outage.last_warning)
                    >= Duration::from_secs(config.warn_interval_secs)
                {
                    tracing::warn!(
                        error = %error,
                        down_secs = outage.since.elapsed().as_secs(),
                        decided_without_redis = fallbacks - outage.fallbacks_at_warning,
                        "redis still unreachable for rate limits; {fallback}"
                    );
                    outage.last_warning = now;
                    outage.fallbacks_at_warning = fallbacks;
                }
                outage.retry_at = now + retry;
                outage.probing = false;
            }
        }
        self.up.store(false, Ordering::Release);
        metrics::gauge!("mailgate_ratelimit_redis_up").set(0.0);
    }

    fn fell_back(&self, mode: RedisFailureMode) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let mode = match mode {
            RedisFailureMode::FailOpen => "fail_open",
            RedisFailureMode::FailClosed => "fail_closed",
        };
        metrics::counter!("mailgate_ratelimit_fallback_total", "mode" => mode).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(quota: Option<u64>) -> Params {
        Params {
            class: Class::Send,
            interval_us: 500_000,
            burst: 5,
            quota,
            quota_period_secs: 86_400,
        }
    }

    fn outcome(verdict: Verdict, remaining: u64, quota_used: u64) -> Outcome {
        Outcome {
            verdict,
            remaining,
            reset: Duration::from_millis(1500),
            retry_after: Duration::from_millis(200),
            quota_used,
            quota_reset: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_policy_names_burst_window_and_quota() {
        assert_eq!(params(None).policy(), "5;w=3");
        assert_eq!(params(Some(100)).policy(), "5;w=3, 100;w=86400");
    }

    #[test]
    fn headers_show_the_limit_closest_to_running_out() {
        let d = Decision::new(params(Some(100)), &outcome(Verdict::Allowed, 4, 10));
        assert_eq!((d.limit, d.remaining, d.reset_secs()), (5, 4, 2));
        assert_eq!(d.retry_after_secs(), None);
        let d = Decision::new(params(Some(100)), &outcome(Verdict::Allowed, 4, 98));
        assert_eq!((d.limit, d.remaining, d.reset_secs()), (100, 2, 3600));
        let d = Decision::new(params(Some(100)), &outcome(Verdict::OverQuota, 4, 100));
        assert_eq!((d.limit, d.remaining), (100, 0));
        assert_eq!(d.retry_after_secs(), Some(3600));
        let d = Decision::new(params(None), &outcome(Verdict::Limited, 0, 0));
        assert_eq!(d.retry_after_secs(), Some(1), "never Retry-After: 0");
    }

    #[tokio::test]
    async fn describes_its_backend() {
        let mut config = Config::default();
        assert!(
            Limiter::new(&config)
                .unwrap()
                .describe()
                .contains("governor")
        );
        config.redis_url = Some("redis://:hunter2@127.0.0.1:6379/0".into());
        let described = Limiter::new(&config).unwrap().describe();
        assert!(described.starts_with("redis redis://:***@127.0.0.1:6379/0"));
        assert!(!described.contains("hunter2"));
        config.ratelimit.enabled = false;
        assert_eq!(Limiter::new(&config).unwrap().describe(), "off");
    }

    #[tokio::test]
    async fn the_local_limiter_allows_the_burst_then_refuses() {
        let limiter = Limiter::new(&Config::default()).unwrap();
        let limits = KeyLimits {
            rate_per_sec: Some(1.0),
            burst: Some(3),
            daily_quota: None,
        };
        let key = Uuid::now_v7();
        for left in [2, 1, 0] {
            let d = limiter
                .check(key, &limits, Class::Send, 1)
                .await
                .unwrap()
                .unwrap();
            assert_eq!((d.limit, d.remaining), (3, left));
        }
        match limiter.check(key, &limits, Class::Send, 1).await {
            Err(Refusal::RateLimited(d)) => assert_eq!(d.retry_after_secs(), Some(1)),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(matches!(
            limiter.check(key, &limits, Class::Send, 4).await,
            Err(Refusal::TooLarge { units: 4, burst: 3 })
        ));
        // Another key, and the same key's other bucket, are untouched.
        assert!(
            limiter
                .check(Uuid::now_v7(), &limits, Class::Send, 3)
                .await
                .is_ok()
        );
        assert!(limiter.check(key, &limits, Class::Api, 1).await.is_ok());
    }

    #[tokio::test]
    async fn the_local_limiter_counts_the_quota() {
        let limiter = Limiter::new(&Config::default()).unwrap();
        let limits = KeyLimits {
            rate_per_sec: Some(1000.0),
            burst: Some(100),
            daily_quota: Some(5),
        };
        let key = Uuid::now_v7();
        limiter.check(key, &limits, Class::Send, 3).await.unwrap();
        match limiter.check(key, &limits, Class::Send, 3).await {
            Err(Refusal::QuotaExceeded {
                decision,
                resets_at,
            }) => {
                assert_eq!((decision.limit, decision.remaining), (5, 2));
                assert!(resets_at > Utc::now());
            }
            other => panic!("expected quota_exceeded, got {other:?}"),
        }
        let d = limiter
            .check(key, &limits, Class::Send, 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((d.limit, d.remaining), (5, 0));
    }
}
