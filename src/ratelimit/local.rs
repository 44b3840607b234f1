//! The per-process backend: one governor GCRA limiter per (subject, class), and quota
//! counters in memory. Used without Redis, and while Redis is down (fail open); its
//! buckets are independent of the ones in Redis, so an outage starts them full.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use governor::{
    Quota, RateLimiter,
    clock::DefaultClock,
    middleware::StateInformationMiddleware,
    state::{InMemoryState, NotKeyed},
};
use uuid::Uuid;

use super::{Class, Outcome, Params, Verdict};

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// Beyond this many buckets, full ones are dropped (a full bucket is the same as none).
const PRUNE_AT: usize = 10_000;

#[derive(Default)]
pub(super) struct LocalLimiter {
    // One lock over both maps, so a quota check and its charge are one step.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    buckets: HashMap<(Uuid, Class), Entry>,
    /// Subject → (period length, period number, units used in it).
    quotas: HashMap<Uuid, (u64, u64, u64)>,
}

struct Entry {
    params: Params,
    bucket: Bucket,
    last_used: Instant,
}

impl LocalLimiter {
    pub(super) fn check(&self, subject: Uuid, params: &Params, units: u32) -> Outcome {
        let Some(n) = NonZeroU32::new(units) else {
            unreachable!("callers charge at least one unit");
        };
        let interval = Duration::from_micros(params.interval_us);
        let burst = NonZeroU32::new(params.burst).unwrap_or(NonZeroU32::MIN);
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let period_len = params.quota_period_secs.max(1);
        let period = now_s / period_len;
        let quota_reset = Duration::from_secs((period + 1) * period_len - now_s);

        let mut state = self.state.lock().expect("not poisoned");
        if state.buckets.len() > PRUNE_AT {
            state.prune();
        }
        let quota = params.quota.filter(|_| params.class == Class::Send);
        let used = match (quota, state.quotas.get(&subject)) {
            (Some(_), Some(&(len, p, used))) if len == period_len && p == period => used,
            _ => 0,
        };
        let entry = state
            .buckets
            .entry((subject, params.class))
            .and_modify(|e| {
                // Changed limits (PATCH) start a fresh bucket.
                if e.params != *params {
                    *e = Entry::new(*params, interval, burst);
                }
            })
            .or_insert_with(|| Entry::new(*params, interval, burst));
        entry.last_used = Instant::now();
        let outcome = |verdict, remaining: u64, retry_after, used| Outcome {
            verdict,
            remaining,
            reset: interval * (u32::from(burst) - remaining.min(burst.get().into()) as u32),
            retry_after,
            quota_used: used,
            quota_reset,
        };

        if let Some(quota) = quota
            && used + u64::from(units) > quota
        {
            // Nothing is charged; the bucket's level is not known without charging it.
            return outcome(Verdict::OverQuota, 0, Duration::ZERO, used);
        }
        match entry.bucket.check_n(n) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity().into();
                let used = used + u64::from(units);
                if quota.is_some() {
                    state.quotas.insert(subject, (period_len, period, used));
                }
                outcome(Verdict::Allowed, remaining, Duration::ZERO, used)
            }
            Ok(Err(not_until)) => {
                let wait =
                    not_until.wait_time_from(governor::clock::Clock::now(&DefaultClock::default()));
                // The wait is for the units missing, one interval each.
                let missing = wait.as_micros().div_ceil(u128::from(params.interval_us)) as u64;
                let remaining = u64::from(units).saturating_sub(missing);
                outcome(Verdict::Limited, remaining, wait, used)
            }
            // Callers refuse more units than the burst before asking.
            Err(_insufficient) => outcome(Verdict::Limited, 0, interval * burst.get(), used),
        }
    }
}

impl Entry {
    fn new(params: Params, interval: Duration, burst: NonZeroU32) -> Self {
        // `interval` is at least 1 µs, so the quota always exists.
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Entry {
            params,
            bucket: RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>(),
            last_used: Instant::now(),
        }
    }
}

impl State {
    fn prune(&mut self) {
        self.buckets.retain(|_, e| {
            let refill = Duration::from_micros(e.params.interval_us) * e.params.burst;
            e.last_used.elapsed() < refill
        });
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        // A quota counter of a past period counts nothing any more.
        self.quotas
            .retain(|_, (len, period, _)| now_s / *len == *period);
    }
}
