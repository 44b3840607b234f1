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
    /// Record a clicked URL with its query string and fragment. Off: recorded (in events,
    /// webhooks and the API) as scheme, host and path only, since magic links and password
    /// reset tokens live in the query. The redirect always goes to the full URL.
    pub record_query: bool,
    /// Opens and clicks recorded per client and minute (a client is an IPv4 address or an
    /// IPv6 /64), shared by every instance through Redis. Beyond it the pixel is still
    /// served and the link still redirects, but nothing is recorded. 0: no limit.
    pub per_ip_per_minute: u32,
    /// Opens and clicks recorded per token (one message's pixel, or one link of one
    /// message) and minute, on the same terms. 0: no limit.
    pub per_token_per_minute: u32,
    /// After a message's recorded open, further opens within this many seconds are only
    /// counted (the message's `opens.count`), not recorded as new `opened` events and
    /// webhooks. 0: every open within the limits is an event.
    pub open_window_secs: u64,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            record_ip: true,
            record_query: true,
            per_ip_per_minute: 60,
            per_token_per_minute: 10,
            open_window_secs: 3600,
        }
    }
}

impl TrackingConfig {
    /// `base_url` without a trailing slash.
    pub fn base(&self) -> Option<&str> {
        self.base_url.as_deref().map(|b| b.trim_end_matches('/'))
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.open_window_secs > 366 * 86_400 {
            bail!(
                "tracking.open_window_secs: {} is more than a year",
                self.open_window_secs
            );
        }
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

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn the_open_window_is_at_most_a_year() {
        let mut c = Config::default();
        c.tracking.open_window_secs = 0;
        assert!(c.validate().is_ok(), "0: every open is an event");
        c.tracking.open_window_secs = 400 * 86_400;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("tracking.open_window_secs"), "{err}");
    }
}
