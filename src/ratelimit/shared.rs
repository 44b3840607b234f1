//! The one Redis handle of a process for rate limits and relay pacing: the connection (with
//! its scripts) and what is known of its health. `app` builds it once and gives it to the
//! [`Limiter`](super::Limiter) and the [`RelayPacer`](super::pace::RelayPacer), so Redis
//! going down or coming back is noticed once: one `mailgate_ratelimit_redis_up` gauge, one
//! warning, one line when it is back.

use std::{sync::Arc, time::Duration};

use super::{
    health::RedisHealth,
    redis::{RedisGcra, RedisTrouble},
};
use crate::config::Config;

/// Cheap to clone: clones share the connection and its health.
#[derive(Clone)]
pub struct SharedRedis(Arc<Inner>);

struct Inner {
    redis: RedisGcra,
    health: RedisHealth,
    /// `redis_url` with its password hidden, for the start-up line.
    url: String,
}

impl SharedRedis {
    /// The handle for `redis_url`, or `None` without one. It connects lazily, so an
    /// unreachable Redis does not keep mailgate from starting.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Self>> {
        let Some(url) = &config.redis_url else {
            return Ok(None);
        };
        Ok(Some(Self(Arc::new(Inner {
            redis: RedisGcra::new(url.expose(), &config.redis)?,
            health: RedisHealth::default(),
            url: url.redacted(),
        }))))
    }

    pub(super) fn redis(&self) -> &RedisGcra {
        &self.0.redis
    }

    pub(super) fn health(&self) -> &RedisHealth {
        &self.0.health
    }

    pub(super) fn url(&self) -> &str {
        &self.0.url
    }

    /// Whether to ask Redis now (see [`RedisHealth::ready`]).
    pub(super) fn ready(&self) -> bool {
        self.0.health.ready(&self.0.redis)
    }

    /// Records how a call went (see [`RedisHealth::settle`]): its value, or `None` for the
    /// caller's `fallback` to decide.
    pub(super) fn settle<T>(
        &self,
        result: Result<T, RedisTrouble>,
        fallback: &str,
        warn_interval: Duration,
    ) -> Option<T> {
        self.0
            .health
            .settle(result, &self.0.redis, fallback, warn_interval)
    }
}
