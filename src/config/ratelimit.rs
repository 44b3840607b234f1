//! `[ratelimit]`: per-key limits and what happens while Redis is away.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::domain::api_key::{check_burst, check_daily_quota, check_rate};

/// Per-key limits. Sends count one unit per message; every other request one unit of `api`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Off: no limits and no `RateLimit-*` headers (the failed-auth throttle stays on).
    pub enabled: bool,
    /// Defaults for messages sent; a key's own `rate_per_sec`, `burst`, `daily_quota` win.
    pub send: SendLimits,
    /// Every other authenticated request, per key (and for the operator).
    pub api: ApiLimits,
    /// What happens while Redis cannot be reached.
    pub on_redis_error: RedisFailureMode,
    /// At most one warning per this many seconds while Redis stays unreachable.
    pub warn_interval_secs: u64,
    /// Failed authentications per client IP and minute before it gets 429s; 0 turns this off.
    pub auth_failures_per_minute: u32,
    /// Length of the "daily" quota period, aligned to the Unix epoch (86400: UTC days).
    /// Only tests have a reason to change it.
    pub quota_period_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendLimits {
    pub rate_per_sec: f64,
    pub burst: u32,
    /// Messages per UTC day; unset means none.
    pub daily_quota: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiLimits {
    pub rate_per_sec: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailureMode {
    /// The per-process governor limiter decides until Redis is back (limits per process).
    FailOpen,
    /// Authenticated requests get 503 until Redis is back.
    FailClosed,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            send: SendLimits::default(),
            api: ApiLimits::default(),
            on_redis_error: RedisFailureMode::FailOpen,
            warn_interval_secs: 60,
            auth_failures_per_minute: 10,
            quota_period_secs: 86_400,
        }
    }
}

impl Default for SendLimits {
    fn default() -> Self {
        // A burst of 500 lets the largest batch through at once.
        Self {
            rate_per_sec: 50.0,
            burst: 500,
            daily_quota: None,
        }
    }
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            rate_per_sec: 100.0,
            burst: 200,
        }
    }
}

impl RateLimitConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        for (name, rate, burst) in [
            ("send", self.send.rate_per_sec, self.send.burst),
            ("api", self.api.rate_per_sec, self.api.burst),
        ] {
            if let Err(m) = check_rate(rate) {
                bail!("ratelimit.{name}.rate_per_sec: {m}");
            }
            if let Err(m) = check_burst(burst.into()) {
                bail!("ratelimit.{name}.burst: {m}");
            }
        }
        if let Some(q) = self.send.daily_quota
            && let Err(m) = check_daily_quota(q as i64)
        {
            bail!("ratelimit.send.daily_quota: {m}");
        }
        if self.quota_period_secs == 0 {
            bail!("ratelimit.quota_period_secs must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn rate_limits_are_checked() {
        let mut c = Config::default();
        c.ratelimit.send.rate_per_sec = 0.0;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.ratelimit.api.burst = 0;
        assert!(c.validate().is_err());
        assert!(Config::default().validate().is_ok());
    }
}
