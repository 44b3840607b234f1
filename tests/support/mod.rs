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

use std::sync::{
    LazyLock,
    atomic::{AtomicU32, Ordering},
};

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
///
/// It is taken from below the kernel's ephemeral range. The kernel hands ports from that
/// range to every `:0` bind (odd ones) and outgoing connection (even ones), and the suite makes
/// many of both in parallel, so a port found there could be taken before the server binds it:
/// CI lost a rolling-restart test to "Address already in use" on 36343, an odd one. Below the
/// range only another call of this function competes, and each process starts at its own
/// random point.
pub fn free_port() -> u16 {
    let ports = &*PORTS;
    for _ in 0..ports.span {
        let port = ports.low + (ports.next.fetch_add(1, Ordering::Relaxed) % ports.span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free loopback port in {}..{}",
        ports.low,
        u32::from(ports.low) + ports.span
    );
}

/// Where `free_port` draws from: ports 10000 up to the start of the kernel's ephemeral range
/// (32768 by default), from one random starting point per process, then consecutive ports, so
/// calls in one process never draw the same port and two processes start far apart.
struct Ports {
    low: u16,
    span: u32,
    next: AtomicU32,
}

static PORTS: LazyLock<Ports> = LazyLock::new(|| {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    assert!(
        first_ephemeral > 12_000,
        "the ephemeral port range starts at {first_ephemeral}; the tests need ports 10000-12000 outside it"
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    Ports {
        low: 10_000,
        span: u32::from(first_ephemeral - 10_000),
        next: AtomicU32::new(std::process::id().wrapping_mul(2_654_435_761) ^ nanos),
    }
});
