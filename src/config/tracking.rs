//! `[tracking]`: opens and clicks of tracked mail, counted through links to mailgate.

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackingConfig {
    /// Where recipients' mail clients reach mailgate's `/t/…` endpoints, e.g.
    /// `https://mail.example.com`. Unset: nothing is tracked, whatever a send asks.
    pub base_url: Option<String>,
    /// Record the client's IP address with each open and click.
    pub record_ip: bool,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            record_ip: true,
        }
    }
}

impl TrackingConfig {
    /// `base_url` without a trailing slash.
    pub fn base(&self) -> Option<&str> {
        self.base_url.as_deref().map(|b| b.trim_end_matches('/'))
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if let Some(base) = &self.base_url {
            let parsed = url::Url::parse(base);
            let ok = parsed.as_ref().is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            if !ok {
                bail!(
                    "tracking.base_url: `{base}` is not an http(s) URL like https://mail.example.com"
                );
            }
        }
        Ok(())
    }
}
