//! mailgate: an HTTP-to-SMTP transactional email gateway.
//!
//! `api` takes requests, `domain` validates them, `mime` renders them, `store` commits them,
//! `queue` hands them to `delivery`, which relays them upstream; `webhooks` reports every
//! recipient transition to the project's endpoints.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod mime;
pub mod queue;
pub mod retention;
pub mod store;
pub mod submission;
pub mod telemetry;
pub mod webhooks;

pub use app::Application;
pub use config::Config;
