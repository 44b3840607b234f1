//! `[http]`: limits of the HTTP API, and the proxies whose word on the client's address it
//! takes.

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest accepted request body (base64 attachments inflate by 4/3).
    pub max_body_bytes: usize,
    /// Largest MIME message mailgate builds or accepts.
    pub max_message_bytes: usize,
    /// Most bytes of MIME the messages of one request may render in all (a batch, a SendGrid
    /// mail's personalizations, in sandbox and test modes too); past it the request is
    /// refused with 413. Bounds what one request holds and the work it asks for.
    pub max_request_bytes_rendered: usize,
    /// How long a verified API key is trusted before it is looked up again (revocation delay).
    pub key_cache_secs: u64,
    /// Most messages in one `POST /v1/emails/batch`.
    pub max_batch: usize,
    /// How far ahead `send_at` may schedule a message.
    pub max_schedule_days: i64,
    /// On SIGTERM, how long `/readyz` answers 503 while everything still runs, before the
    /// listeners close: time for a load balancer to stop routing to this process.
    pub drain_secs: u64,
    /// Proxies in front of the HTTP listener (addresses or CIDRs). A request from one of them
    /// is taken to come from the address it names in `X-Forwarded-For`; from anywhere else,
    /// that header is ignored. The failed-authentication throttle counts per client address.
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 14 * 1024 * 1024,
            max_message_bytes: 10 * 1024 * 1024,
            max_request_bytes_rendered: 50 * 1024 * 1024,
            key_cache_secs: 10,
            max_batch: 500,
            max_schedule_days: 30,
            drain_secs: 0,
            trusted_proxies: Vec::new(),
        }
    }
}

impl HttpConfig {
    /// Parses `trusted_proxies`; a bare address counts as a single host.
    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|raw| {
                let s = raw.trim();
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| {
                        format!(
                            "http.trusted_proxies: `{s}` is not an address or a CIDR like 10.0.0.0/8"
                        )
                    })
            })
            .collect()
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        self.trusted_proxies()?;
        if self.max_request_bytes_rendered < self.max_message_bytes {
            anyhow::bail!(
                "http.max_request_bytes_rendered ({}) is less than http.max_message_bytes ({}): \
                 a request must be able to render one message of the largest size",
                self.max_request_bytes_rendered,
                self.max_message_bytes
            );
        }
        Ok(())
    }
}
