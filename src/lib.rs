//! mailgate: an HTTP-to-SMTP transactional email gateway.
//!
//! `api` takes requests, `domain` validates them, `submission` renders (`mime`, `templates`)
//! and commits them (`store`), `queue` hands them to `delivery`, which relays them upstream.
//! `smtp` takes mail from apps that speak SMTP into the same `submission` core; `webhooks`
//! reports every recipient transition to the project's endpoints. `ratelimit` decides how
//! much each key may send, shared through Redis.
//!
//! Modules use each other one way: `domain` at the bottom; `config`, `store`, `templates`,
//! `ratelimit`, `queue`, `delivery` in the middle; `submission` above them; `service`, the
//! application layer (every operation, the gate, the one error type and the shared
//! `AppState`), above that; the transports (`api` with the providers' routes, `smtp`, and
//! `console`) on top, none importing another; and `app`, `cli` and `main` wiring it all. `scripts/module-graph` prints the
//! graph and fails on a cycle.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod delivery;
pub mod doctor;
pub mod domain;
pub mod inbound;
pub mod mime;
pub mod queue;
pub mod ratelimit;
pub mod retention;
pub mod scan;
pub mod secrets;
pub mod service;
pub mod smtp;
pub mod store;
pub mod submission;
pub mod telemetry;
pub mod templates;
pub mod tls;
pub mod tokens;
pub mod tracking;
pub mod webhooks;

pub use app::Application;
pub use config::Config;
