//! Pacing of each [`Lane`] mail goes down: an upstream relay (`relays.NAME.max_rate_per_sec`,
//! `burst`, `max_connections`), or a destination site from one egress address (direct
//! delivery, `[shaping.NAME]`): how fast mail may go, how many connections may be open, and
//! the back-off its throttling replies ask for.
//!
//! With `redis_url` set, every mailgate process shares one schedule per lane (`pace.lua`)
//! and one set of connection slots (`slots.lua`), on Redis's clock; without Redis, or while
//! it does not answer, each process paces on its own with the same rules ([`PaceState`]).
//! Relays with neither a rate nor a connection cap never touch Redis: their throttling
//! back-off is per process. Sites always share theirs.
//!
//! A send asks for a moment ([`RelayPacer::reserve`]): the schedule either gives it one
//! within the horizon (the caller waits for it, holding its lease) or says how long until
//! there is room, and the caller puts the job back without counting an attempt.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use redis::Script;
use serde::Serialize;

use super::SharedRedis;
use crate::config::Config;

static PACE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("pace.lua")));
static SLOTS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("slots.lua")));

/// The first pause after a throttling reply; each one soon after the last doubles it.
pub const THROTTLE_BASE: Duration = Duration::from_secs(1);
/// The longest pause a run of throttling replies leads to.
pub const THROTTLE_MAX: Duration = Duration::from_secs(60);
/// After a pause the relay runs at half its rate, without burst, for this long.
pub const THROTTLE_SLOW: Duration = Duration::from_secs(60);
/// A connection slot lasts this long unless its holder renews it (a dead process's slots
/// free themselves).
pub const SLOT_TTL: Duration = Duration::from_secs(30);
/// An idle pooled connection that holds a slot is closed after this long (Postfix keeps
/// cached connections 2 s): the slot goes to another process with mail for the lane, and it
/// never runs out (`SLOT_TTL`) while its connection is open, which would let others open
/// more connections than the cap.
pub const SLOT_IDLE: Duration = Duration::from_secs(2);
/// How often a sender waiting for a connection slot asks again: another process frees one
/// without a word to this one.
pub const SLOT_POLL: Duration = Duration::from_millis(25);

/// Whether a pooled connection idle for `idle`, whose slot was renewed at `renewed`, may
/// keep its slot: a slot is renewed when its connection is reused, and one renewed half its
/// lifetime ago goes with its connection before it can run out.
pub fn keeps_slot(idle: Duration, renewed: std::time::Instant) -> bool {
    idle < SLOT_IDLE && renewed.elapsed() < SLOT_TTL / 2
}

/// What one schedule and one set of connection slots are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane<'a> {
    /// An upstream relay, by name.
    Relay(&'a str),
    /// A destination site (its shaping name, or its MX hosts) as reached from one egress
    /// address (or `any` when the OS picks it).
    Site { site: &'a str, egress: &'a str },
}

impl Lane<'_> {
    /// Its schedule's name (in Redis, under the key prefix).
    fn key(&self) -> String {
        match self {
            Lane::Relay(name) => format!("relay:{name}"),
            Lane::Site { site, egress } => format!("site:{site}@{egress}"),
        }
    }

    /// Its connection slots' name.
    fn slots_key(&self) -> String {
        match self {
            Lane::Relay(name) => format!("relayconn:{name}"),
            Lane::Site { site, egress } => format!("siteconn:{site}@{egress}"),
        }
    }
}

/// A lane's rate, as the schedule uses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Microseconds per message.
    pub interval_us: u64,
    pub burst: u32,
}

impl Rate {
    pub fn per_sec(rate: f64, burst: u32) -> Self {
        Self {
            interval_us: ((1_000_000.0 / rate).round() as u64).max(1),
            burst: burst.max(1),
        }
    }
}

/// What the schedule answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reservation {
    /// This moment, `wait` from now, is the caller's: wait, then send.
    Reserved { wait: Duration },
    /// Nothing within the horizon: ask again in `retry_after`.
    Refused { retry_after: Duration },
}

/// A lane's pacing as this process last heard it (from Redis, or its own).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct PaceStatus {
    /// Sending down this lane is paused until then, after a throttling reply.
    pub paused_until: Option<chrono::DateTime<chrono::Utc>>,
    /// The last pause's length.
    pub backoff_ms: u64,
    /// Running at half the rate, without burst, until then.
    pub slowed_until: Option<chrono::DateTime<chrono::Utc>>,
    /// Throttling replies on this lane (across processes when shared).
    pub throttles: u64,
    /// `redis` (shared by every process) or `local` (this process only).
    pub scope: &'static str,
}

/// One lane's schedule; the same rules as `pace.lua`, for pacing without Redis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaceState {
    pub tat: i64,
    pub pause: i64,
    pub backoff: i64,
    pub slow: i64,
    pub throttles: u64,
}

impl PaceState {
    /// Asks for a moment to send at `now` (microseconds since the epoch).
    pub fn reserve(&mut self, now: i64, rate: Option<Rate>, horizon: Duration) -> Reservation {
        let (mut interval, mut burst) = rate.map_or((0, 1), |r| (r.interval_us as i64, r.burst));
        if now < self.slow {
            interval *= 2;
            burst = 1;
        }
        self.tat = self.tat.max(now);
        let start = now
            .max(self.pause)
            .max(self.tat - interval * (i64::from(burst) - 1));
        let wait = start - now;
        if wait <= horizon.as_micros() as i64 {
            self.tat = self.tat.max(start) + interval;
            Reservation::Reserved { wait: micros(wait) }
        } else {
            Reservation::Refused {
                retry_after: micros(wait - horizon.as_micros() as i64),
            }
        }
    }

    /// Records a throttling reply at `now`: pause, twice as long as the last one when it
    /// follows it closely, then run slowed for a while.
    pub fn throttle(&mut self, now: i64) {
        let (base, max, slow) = (
            THROTTLE_BASE.as_micros() as i64,
            THROTTLE_MAX.as_micros() as i64,
            THROTTLE_SLOW.as_micros() as i64,
        );
        self.throttles += 1;
        if now >= self.pause {
            self.backoff = if self.backoff > 0 && now < self.pause + self.backoff * 2 {
                (self.backoff * 2).min(max)
            } else {
                base
            };
            self.pause = now + self.backoff;
        }
        self.slow = self.slow.max(self.pause + slow);
    }

    fn status(&self, now: i64, scope: &'static str) -> PaceStatus {
        let at = |t: i64| {
            (t > now)
                .then(|| chrono::DateTime::from_timestamp_micros(t))
                .flatten()
        };
        PaceStatus {
            paused_until: at(self.pause),
            backoff_ms: (self.backoff / 1000) as u64,
            slowed_until: at(self.slow),
            throttles: self.throttles,
            scope,
        }
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64
}

/// The pacing of every lane of this process.
pub struct RelayPacer {
    shared: Option<Shared>,
    local: Mutex<Local>,
}

struct Shared {
    redis: SharedRedis,
    warn_interval: Duration,
}

#[derive(Default)]
struct Local {
    /// By lane key.
    schedules: HashMap<String, PaceState>,
    /// Connections open per lane (by slots key), when it has a cap and Redis does not count
    /// them.
    slots: HashMap<String, u32>,
    /// What Redis last said of each shared lane, for status.
    seen: HashMap<String, PaceState>,
}

/// A held connection slot; give it back with [`RelayPacer::release`].
#[derive(Debug)]
pub struct Slot {
    /// The lane's slots key.
    key: String,
    /// Redis's name for this holder, or `None` for a slot counted in this process.
    holder: Option<String>,
}

impl RelayPacer {
    /// Shares pacing through `redis` when there is one (see [`SharedRedis`]).
    pub fn new(config: &Config, redis: Option<SharedRedis>) -> Self {
        Self {
            shared: redis.map(|redis| Shared {
                redis,
                warn_interval: Duration::from_secs(config.ratelimit.warn_interval_secs),
            }),
            local: Mutex::default(),
        }
    }

    /// Pacing in this process only (tests, and mailgate without Redis).
    pub fn local() -> Self {
        Self {
            shared: None,
            local: Mutex::default(),
        }
    }

    /// A moment to send down `lane`, shared through Redis when `shared` (relays: only those
    /// with a rate; sites: always, so a pause holds every process back).
    pub async fn reserve(
        &self,
        lane: Lane<'_>,
        rate: Option<Rate>,
        horizon: Duration,
        shared: bool,
    ) -> Reservation {
        let key = lane.key();
        if let Some(redis) = self.shared(shared) {
            let args = (
                rate.map_or(0, |r| r.interval_us),
                rate.map_or(1, |r| u64::from(r.burst)),
                horizon.as_micros() as u64,
            );
            if let Some(reply) = self.call_pace(redis, &key, "reserve", args).await {
                let wait = micros(reply[0]);
                return if reply[1] == 1 {
                    Reservation::Reserved { wait }
                } else {
                    Reservation::Refused {
                        retry_after: wait.saturating_sub(horizon),
                    }
                };
            }
        }
        let now = now_us();
        let mut local = self.local.lock().expect("not poisoned");
        local
            .schedules
            .entry(key)
            .or_default()
            .reserve(now, rate, horizon)
    }

    /// Records a throttling reply on `lane`; answers how long it is paused.
    pub async fn throttled(&self, lane: Lane<'_>, shared: bool) -> Duration {
        let key = lane.key();
        let pause = match self.shared(shared) {
            Some(shared) => {
                let args = (
                    THROTTLE_BASE.as_micros() as u64,
                    THROTTLE_MAX.as_micros() as u64,
                    THROTTLE_SLOW.as_micros() as u64,
                );
                self.call_pace(shared, &key, "throttle", args)
                    .await
                    .map(|reply| micros(reply[0]))
            }
            None => None,
        };
        pause.unwrap_or_else(|| {
            let now = now_us();
            let mut local = self.local.lock().expect("not poisoned");
            let state = local.schedules.entry(key).or_default();
            state.throttle(now);
            micros(state.pause - now)
        })
    }

    /// The lane's pacing as this process last saw it.
    pub fn status(&self, lane: Lane<'_>, shared: bool) -> PaceStatus {
        let key = lane.key();
        let local = self.local.lock().expect("not poisoned");
        let now = now_us();
        let shared = shared && self.shared.is_some();
        match (shared, local.seen.get(&key), local.schedules.get(&key)) {
            (true, Some(seen), _) => seen.status(now, "redis"),
            (true, None, Some(own)) => own.status(now, "local"),
            (true, None, None) => PaceState::default().status(now, "redis"),
            (false, _, own) => own.cloned().unwrap_or_default().status(now, "local"),
        }
    }

    /// The lane's pacing as every process sees it now: asked of Redis when it is shared
    /// (without changing it), else this process's own. For the operator's views.
    pub async fn peek(&self, lane: Lane<'_>) -> PaceStatus {
        if let Some(shared) = self.shared(true)
            && self
                .call_pace(shared, &lane.key(), "peek", (0, 0, 0))
                .await
                .is_some()
        {
            return self.status(lane, true);
        }
        self.status(lane, false)
    }

    /// Connections open down `lane` now, across every process when Redis counts them.
    pub async fn open_connections(&self, lane: Lane<'_>) -> u32 {
        let key = lane.slots_key();
        if let Some(shared) = self.shared(true) {
            let full = format!("{}{key}", shared.redis.redis().prefix());
            let mut invocation = SLOTS.key(&full);
            invocation.arg("count").arg("").arg(0).arg(0);
            if let Some(n) = self.settle(shared, shared.redis.redis().run::<i64>(&invocation).await)
            {
                return u32::try_from(n).unwrap_or(0);
            }
        }
        let local = self.local.lock().expect("not poisoned");
        local.slots.get(&key).copied().unwrap_or(0)
    }

    /// A connection slot for `lane`, capped at `max` open connections; `None` while full.
    pub async fn acquire(&self, lane: Lane<'_>, max: u32, holder: &str) -> Option<Slot> {
        let key = lane.slots_key();
        if let Some(shared) = self.shared(true) {
            let full = format!("{}{key}", shared.redis.redis().prefix());
            match self.call_slots(shared, &full, "acquire", holder, max).await {
                Some(true) => {
                    return Some(Slot {
                        key,
                        holder: Some(holder.to_string()),
                    });
                }
                Some(false) => return None,
                None => {}
            }
        }
        let mut local = self.local.lock().expect("not poisoned");
        let open = local.slots.entry(key.clone()).or_default();
        if *open >= max {
            return None;
        }
        *open += 1;
        Some(Slot { key, holder: None })
    }

    /// Keeps a slot held for another [`SLOT_TTL`]; false when it was lost (it ran out and
    /// others took the room), and the connection must close.
    pub async fn renew(&self, slot: &Slot, max: u32) -> bool {
        let Some(holder) = &slot.holder else {
            return true;
        };
        let Some(shared) = self.shared(true) else {
            return true;
        };
        let key = format!("{}{}", shared.redis.redis().prefix(), slot.key);
        // Redis not answering: keep the connection; its slot renews once Redis is back.
        self.call_slots(shared, &key, "renew", holder, max)
            .await
            .unwrap_or(true)
    }

    pub async fn release(&self, slot: Slot) {
        match (&slot.holder, &self.shared) {
            (Some(holder), Some(shared)) => {
                let key = format!("{}{}", shared.redis.redis().prefix(), slot.key);
                // Not answering: the slot frees itself after SLOT_TTL.
                self.call_slots(shared, &key, "release", holder, 0).await;
            }
            _ => {
                let mut local = self.local.lock().expect("not poisoned");
                if let Some(open) = local.slots.get_mut(&slot.key) {
                    *open = open.saturating_sub(1);
                }
            }
        }
    }

    /// The Redis backend, unless it is not wanted or recently failed.
    fn shared(&self, wanted: bool) -> Option<&Shared> {
        self.shared
            .as_ref()
            .filter(|shared| wanted && shared.redis.ready())
    }

    /// Runs `pace.lua` on the lane keyed `lane`; remembers what Redis said of it.
    async fn call_pace(
        &self,
        shared: &Shared,
        lane: &str,
        op: &str,
        (a, b, c): (u64, u64, u64),
    ) -> Option<Vec<i64>> {
        let key = format!("{}{lane}", shared.redis.redis().prefix());
        let mut invocation = PACE.key(&key);
        invocation.arg(op).arg(a).arg(b).arg(c);
        let reply: Vec<i64> = self
            .settle(shared, shared.redis.redis().run(&invocation).await)
            .filter(|r: &Vec<i64>| r.len() == 6)?;
        let seen = PaceState {
            tat: 0,
            pause: reply[2],
            backoff: reply[3],
            slow: reply[4],
            throttles: u64::try_from(reply[5]).unwrap_or(0),
        };
        self.local
            .lock()
            .expect("not poisoned")
            .seen
            .insert(lane.to_string(), seen);
        Some(reply)
    }

    async fn call_slots(
        &self,
        shared: &Shared,
        key: &str,
        op: &str,
        holder: &str,
        max: u32,
    ) -> Option<bool> {
        let mut invocation = SLOTS.key(key);
        invocation
            .arg(op)
            .arg(holder)
            .arg(max)
            .arg(SLOT_TTL.as_millis() as u64);
        let reply: i64 = self.settle(shared, shared.redis.redis().run(&invocation).await)?;
        Some(reply == 1)
    }

    /// Keeps Redis's health up to date with a call's result.
    fn settle<T>(
        &self,
        shared: &Shared,
        result: Result<T, super::redis::RedisTrouble>,
    ) -> Option<T> {
        shared.redis.settle(
            result,
            "each process paces relays and sites on its own",
            shared.warn_interval,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000;

    #[test]
    fn the_schedule_lets_the_burst_go_then_spaces_messages() {
        let mut s = PaceState::default();
        let rate = Some(Rate::per_sec(10.0, 3));
        let horizon = Duration::from_secs(1);
        let now = 1_000 * SEC;
        for _ in 0..3 {
            assert_eq!(
                s.reserve(now, rate, horizon),
                Reservation::Reserved {
                    wait: Duration::ZERO
                }
            );
        }
        // Then one every 100 ms, reserved ahead up to the horizon.
        for n in 1..=10 {
            assert_eq!(
                s.reserve(now, rate, horizon),
                Reservation::Reserved {
                    wait: Duration::from_millis(100 * n)
                }
            );
        }
        assert_eq!(
            s.reserve(now, rate, horizon),
            Reservation::Refused {
                retry_after: Duration::from_millis(100)
            }
        );
    }

    #[test]
    fn throttling_pauses_doubles_and_slows() {
        let mut s = PaceState::default();
        let rate = Some(Rate::per_sec(10.0, 5));
        let horizon = Duration::from_millis(500);
        let now = 1_000 * SEC;
        s.throttle(now);
        assert_eq!(s.pause, now + SEC);
        // Replies from sends under way when the pause began do not escalate it.
        s.throttle(now + 1);
        assert_eq!((s.pause, s.throttles), (now + SEC, 2));
        assert!(matches!(
            s.reserve(now, rate, horizon),
            Reservation::Refused { .. }
        ));
        // After the pause: half the rate, no burst.
        let after = now + SEC;
        assert_eq!(
            s.reserve(after, rate, horizon),
            Reservation::Reserved {
                wait: Duration::ZERO
            }
        );
        assert_eq!(
            s.reserve(after, rate, horizon),
            Reservation::Reserved {
                wait: Duration::from_millis(200)
            }
        );
        // Throttled again soon after: a pause twice as long.
        s.throttle(after + SEC / 2);
        assert_eq!(s.backoff, 2 * SEC);
        // Long after: back to the first pause length.
        let later = after + 600 * SEC;
        s.throttle(later);
        assert_eq!(s.backoff, SEC);
    }

    #[test]
    fn without_a_rate_only_pauses_hold_mail_back() {
        let mut s = PaceState::default();
        let now = 1_000 * SEC;
        for _ in 0..100 {
            assert_eq!(
                s.reserve(now, None, Duration::ZERO),
                Reservation::Reserved {
                    wait: Duration::ZERO
                }
            );
        }
        s.throttle(now);
        assert_eq!(
            s.reserve(now, None, Duration::from_secs(2)),
            Reservation::Reserved {
                wait: Duration::from_secs(1)
            }
        );
    }

    #[tokio::test]
    async fn local_slots_cap_connections() {
        let pacer = RelayPacer::local();
        let r = Lane::Relay("r");
        let a = pacer.acquire(r, 2, "a").await.unwrap();
        let _b = pacer.acquire(r, 2, "b").await.unwrap();
        assert!(pacer.acquire(r, 2, "c").await.is_none());
        assert!(pacer.acquire(Lane::Relay("other"), 2, "c").await.is_some());
        // A site from one egress address is a lane of its own.
        let site = Lane::Site {
            site: "r",
            egress: "192.0.2.1",
        };
        assert!(pacer.acquire(site, 2, "c").await.is_some());
        assert_eq!(pacer.open_connections(site).await, 1);
        pacer.release(a).await;
        assert!(pacer.acquire(r, 2, "c").await.is_some());
    }
}
