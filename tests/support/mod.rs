//! Shared by the integration tests: a running mailgate per test, an SMTP server to relay to,
//! and a private Redis to stop and restart.
#![allow(dead_code)]

pub mod app;
pub mod dkim;
pub mod smtp_server;
pub mod test_redis;
pub mod webhook_receiver;
