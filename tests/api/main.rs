//! Integration tests through HTTP against a real mailgate, Postgres and SMTP server.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod delivery;
mod instances;
mod ratelimit;
mod send;
mod validation;
