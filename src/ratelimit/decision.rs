//! What a check answers: a [`Decision`] for the `RateLimit-*` headers, or a [`Refusal`].

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Params;

/// What a backend found, before it is turned into a [`Decision`] or a [`Refusal`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Outcome {
    pub(super) verdict: Verdict,
    /// Units left in the bucket (after the charge, when allowed).
    pub(super) remaining: u64,
    /// Until the bucket is full again.
    pub(super) reset: Duration,
    /// Until the units asked for would fit (rate limited only).
    pub(super) retry_after: Duration,
    /// Quota units used in the current period (including this charge, when allowed).
    pub(super) quota_used: u64,
    /// Until the current quota period ends.
    pub(super) quota_reset: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
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
    pub(super) fn new(params: Params, o: &Outcome) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Class;

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
}
