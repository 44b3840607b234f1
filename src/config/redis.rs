//! `[redis]`: how mailgate uses the Redis named by `redis_url` (shared rate limits).

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Prepended to every Redis key, so several deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// Longest a rate-limit call may wait for Redis before the fallback decides.
    pub timeout_ms: u64,
    /// After a Redis failure, how long the fallback decides alone before Redis is tried again.
    pub retry_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            key_prefix: "mailgate:".into(),
            timeout_ms: 100,
            retry_ms: 1000,
        }
    }
}

impl RedisConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn retry(&self) -> Duration {
        Duration::from_millis(self.retry_ms)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.timeout_ms == 0 || self.retry_ms == 0 {
            bail!("redis.timeout_ms and redis.retry_ms must be positive");
        }
        Ok(())
    }
}
