//! `[compat]`: the provider-compatible routes (Resend, Postmark, SendGrid, Mailgun).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompatConfig {
    /// Requests with Postmark's test token (`X-Postmark-Server-Token: POSTMARK_API_TEST`)
    /// per client (an IPv4 address or an IPv6 /64) and minute, burst included, shared
    /// through Redis. Such a request is checked and answered as Postmark does, and nothing
    /// is stored or sent; it belongs to no project, so this is its only bound. 0: the test
    /// token is refused as any unknown token (401, `ErrorCode` 10).
    pub postmark_test_token_per_ip_per_minute: u32,
}

impl Default for CompatConfig {
    fn default() -> Self {
        Self {
            postmark_test_token_per_ip_per_minute: 60,
        }
    }
}
