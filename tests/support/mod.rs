//! Shared by the integration tests: a running mailgate per test, and an SMTP server to relay to.
#![allow(dead_code)]

pub mod app;
pub mod smtp_server;
pub mod webhook_receiver;
