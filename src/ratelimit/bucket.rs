//! The two buckets every key has, the anonymous tracking buckets, and the parameters a check
//! is made with.

/// Which bucket a unit is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Messages, one unit each, whatever way they come in.
    Send,
    /// Every other authenticated request.
    Api,
    /// Anonymous opens and clicks of tracked mail, per client address and per token; the
    /// rate and burst are the caller's (`tracking.per_ip_per_minute`, `per_token_per_minute`).
    Tracking,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Send => "send",
            Class::Api => "api",
            Class::Tracking => "track",
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
