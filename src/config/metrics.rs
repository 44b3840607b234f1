//! `[metrics]`: the Prometheus listener. `/metrics` is served on its own address, never on the
//! API listener: the API faces clients (and, with tracking on, the internet), while the
//! metrics name every project and its volumes.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` in `serve`; `false` serves it nowhere.
    pub enabled: bool,
    /// Where the metrics listener binds (loopback by default: scrape from the same host, or
    /// give an internal address).
    pub addr: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: "127.0.0.1:9464".parse().expect("valid default"),
        }
    }
}
