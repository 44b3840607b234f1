//! mailgate: an HTTP-to-SMTP transactional email gateway.
//!
//! `api` takes requests, `domain` validates them, `mime` renders them, `store` commits them,
//! `queue` hands them to `delivery`, which relays them upstream. `smtp` takes mail from apps
//! that speak SMTP into the same path; `webhooks` reports every recipient transition to the
//! project's endpoints. `ratelimit` decides how much each key may send, shared
//! through Redis.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod doctor;
pub mod domain;
pub mod mime;
pub mod queue;
pub mod ratelimit;
pub mod retention;
pub mod smtp;
pub mod store;
pub mod submission;
pub mod telemetry;
pub mod templates;
pub mod webhooks;

pub use app::Application;
pub use config::Config;
