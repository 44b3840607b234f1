//! The [`Limiter`]: asks Redis when there is one, falls back on the per-process limiter
//! (or refuses, failing closed) while Redis is unreachable, and reports its state.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use chrono::Utc;
use serde::Serialize;
use uuid::Uuid;

use super::{
    Class, Decision, Outcome, Params, Refusal, SharedRedis, Verdict, health::RedisHealth, local,
    redis,
};
use crate::{
    config::{Config, RateLimitConfig, RedisFailureMode},
    domain::api_key::KeyLimits,
};

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

/// The Redis backend (shared with the relay pacer) and what to do while it is down.
struct Shared {
    redis: SharedRedis,
    mode: RedisFailureMode,
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
    /// Builds the limiter, on `redis` when there is one (see [`SharedRedis`]), else per
    /// process.
    pub fn new(config: &Config, redis: Option<SharedRedis>) -> Self {
        if !config.ratelimit.enabled {
            return Limiter { inner: None };
        }
        let shared = redis.map(|redis| Shared {
            redis,
            mode: config.ratelimit.on_redis_error,
            prefix: config.redis.key_prefix.clone(),
        });
        Limiter {
            inner: Some(Arc::new(Inner {
                config: config.ratelimit.clone(),
                local: local::LocalLimiter::default(),
                shared,
            })),
        }
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
                    s.redis.url(),
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
            // The caller says: these buckets are not a key's, and their config is tracking's.
            Class::Tracking => (
                limits.rate_per_sec.unwrap_or(1.0),
                limits.burst.unwrap_or(60),
                None,
            ),
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
                    shared.redis.health().fell_back(shared.mode);
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
        let up = shared.redis.ready()
            && shared
                .settle(shared.redis.redis().ping().await, &inner.config)
                .is_some();
        Status {
            backend: "redis",
            redis: Some(if up { "up" } else { "down" }),
            fallbacks: shared.redis.health().fallbacks.load(Ordering::Relaxed),
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
        if !self.redis.ready() {
            return None;
        }
        self.settle(
            self.redis.redis().check(subject, params, units).await,
            config,
        )
    }

    fn settle<T>(
        &self,
        result: Result<T, redis::RedisTrouble>,
        config: &RateLimitConfig,
    ) -> Option<T> {
        self.redis.settle(
            result,
            RedisHealth::fallback(config),
            Duration::from_secs(config.warn_interval_secs),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn describes_its_backend() {
        let mut config = Config::default();
        let redis = |config: &Config| SharedRedis::from_config(config).unwrap();
        assert!(
            Limiter::new(&config, redis(&config))
                .describe()
                .contains("governor")
        );
        config.redis_url = Some("redis://:hunter2@127.0.0.1:6379/0".into());
        let described = Limiter::new(&config, redis(&config)).describe();
        assert!(described.starts_with("redis redis://:***@127.0.0.1:6379/0"));
        assert!(!described.contains("hunter2"));
        config.ratelimit.enabled = false;
        assert_eq!(Limiter::new(&config, redis(&config)).describe(), "off");
    }

    #[tokio::test]
    async fn the_local_limiter_allows_the_burst_then_refuses() {
        let limiter = Limiter::new(&Config::default(), None);
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
        let limiter = Limiter::new(&Config::default(), None);
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
