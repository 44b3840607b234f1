//! Rate limits: who may do how much, how fast.
//!
//! This folder owns the [`Limiter`] every intake path asks before it accepts work (HTTP
//! requests, each message of a batch, each SMTP submission), the [`Decision`] it answers
//! (limit, remaining, reset, retry-after: what the `RateLimit-*` headers say), the [`Refusal`]s,
//! and the [`AuthThrottle`] that slows down key guessing per client IP.
//!
//! Each key has two buckets: `send` (one unit per message; rate, burst and an optional quota
//! per UTC day, from the key or the config) and `api` (one unit per other request, a looser
//! config-wide default). With `redis_url` set the buckets live in Redis, decided by one Lua
//! GCRA script ([`redis`]) on Redis's clock, so every mailgate process shares them. Without
//! Redis, or while Redis is unreachable and `on_redis_error = "fail_open"`, a per-process
//! governor limiter ([`local`]) decides instead.

//!
//! - `bucket`: the buckets ([`Class`]) and their parameters from config and key.
//! - `decision`: what a check answers, allowed or refused.
//! - `limiter`: the [`Limiter`]: Redis first, the local fallback, what `/readyz` reports.
//! - `health`: whether Redis answers, and when to try it again.
//! - `redis`, `local`: the two backends. `auth`: the failed-authentication throttle.
//! - `address`: what counts as one client address (an IPv6 /64), and a per-process limit
//!   per address that forgets idle ones (the inbound SMTP listener's).
//! - `client`: opening the Redis client (`rediss://` with a CA file and client certificate).
//! - `pace`: the pacing of upstream relays (their rates, connections and back-off), on the
//!   same Redis.
//! - `shared`: the one Redis handle ([`SharedRedis`]) the limiter and the pacer are given,
//!   so its health is tracked, counted and logged once.

mod address;
mod auth;
mod bucket;
mod client;
mod decision;
mod health;
mod limiter;
mod local;
pub mod pace;
mod redis;
mod shared;

pub use address::{PerAddress, client_prefix};
pub use auth::AuthThrottle;
pub use bucket::{Class, Params};
pub use client::{RedisCheck, check as check_redis, open_client as open_redis_client};
pub use decision::{Decision, Refusal};
use decision::{Outcome, Verdict};
pub use limiter::{Limiter, Status};
pub use shared::SharedRedis;
