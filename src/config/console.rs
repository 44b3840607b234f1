//! `[console]`: the web console served at `/console` by the HTTP listener.

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console at `/console` (only where `api_enabled` too).
    pub enabled: bool,
    /// Mark the session cookie `Secure` even when the request did not say it came over
    /// HTTPS (`X-Forwarded-Proto: https` from the proxy in front).
    pub secure_cookies: bool,
    /// How long a console session lasts after signing in.
    pub session_secs: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            secure_cookies: false,
            session_secs: 8 * 3600,
        }
    }
}

impl ConsoleConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(60..=30 * 24 * 3600).contains(&self.session_secs) {
            bail!(
                "console.session_secs ({}) must be from 60 (a minute) to 2592000 (30 days)",
                self.session_secs
            );
        }
        Ok(())
    }
}
