//! mailgate: an HTTP-to-SMTP transactional email gateway.
//!
//! `api` takes requests, `domain` validates them, `mime` renders them, `store` commits them,
//! `queue` hands them to `delivery`, which relays them upstream. `ratelimit` decides how much
//! each key may send, shared through Redis.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod mime;
pub mod queue;
pub mod ratelimit;
pub mod store;
pub mod submission;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
