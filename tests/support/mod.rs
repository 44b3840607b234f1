//! Shared by the integration tests: a running mailgate per test, an SMTP server to relay to,
//! and a private Redis to stop and restart.
#![allow(dead_code)]

pub mod api;
pub mod app;
pub mod browser;
pub mod dkim;
pub mod dns_server;
pub mod eventually;
pub mod postfix;
pub mod process;
pub mod signed_zone;
pub mod smtp_server;
pub mod test_ca;
pub mod test_redis;
pub mod webhook_receiver;

pub use eventually::{eventually, within};

/// Why a tool the tests drive could not be started, naming what to install. Tests that need
/// one fail with this rather than skip: a skipped test would pass in CI without testing.
pub fn missing_tool(program: &str, package: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("{program} is not installed: apt-get install {package} (scripts/test installs it)")
    } else {
        format!("{program} does not start: {e}")
    }
}

/// A loopback port free a moment ago, for a server a test starts itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
