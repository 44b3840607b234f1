//! `[scan]`: spam and virus scanning of every message at accept, with rspamd and ClamAV, and
//! what to do with what they find (each overridable per project).

use serde::{Deserialize, Serialize};

use super::SecretUrl;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// rspamd's normal worker, e.g. `http://127.0.0.1:11333`; unset means no spam scan. A
    /// password in it (`http://user:password@…`, for a proxy in front of rspamd) never prints.
    pub rspamd_url: Option<SecretUrl>,
    /// clamd: `host:port` or a unix socket path; unset means no virus scan.
    pub clamd_addr: Option<String>,
    /// Longest wait for a scanner on one message; past it, `on_error` decides.
    pub timeout_ms: u64,
    /// Larger messages are not scanned; `oversize` says what happens to them.
    pub max_bytes: usize,
    /// A message larger than `max_bytes`: `fail_open` (accepted unscanned), `fail_closed`
    /// (refused: `413` over HTTP, `552` over SMTP) or `hold`. Unset means as `on_error` (the
    /// project's, if it has its own).
    pub oversize: Option<OnScanError>,
    /// rspamd's verdict counts as spam at this score or above; unset means when rspamd's
    /// action is `reject`, `rewrite subject` or `add header`.
    pub spam_score: Option<f64>,
    /// What a spam verdict does: `reject`, `hold` or `tag`.
    pub spam: ScanAction,
    /// What a virus does: `reject`, `hold` or `tag`.
    pub virus: ScanAction,
    /// A scanner down or slow: `fail_open`, `fail_closed` or `hold`.
    pub on_error: OnScanError,
    /// Held mail neither released nor discarded is cancelled after this long.
    pub hold_hours: u64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            rspamd_url: None,
            clamd_addr: None,
            timeout_ms: 5000,
            max_bytes: 10 * 1024 * 1024,
            oversize: None,
            spam_score: None,
            spam: ScanAction::Reject,
            virus: ScanAction::Reject,
            on_error: OnScanError::FailOpen,
            hold_hours: 72,
        }
    }
}

/// What a verdict does to the message: `reject` (nothing stored), `hold` (held until released
/// or discarded) or `tag` (headers added, then sent).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ScanAction {
    /// Stored with headers saying what was found, and sent.
    Tag,
    /// Stored as `held` until released or discarded.
    Hold,
    /// Refused: nothing is stored.
    Reject,
}

/// What a scanner that cannot answer does to the message: `fail_open` (accepted unscanned),
/// `fail_closed` (refused for now) or `hold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnScanError {
    /// Accepted unscanned (logged and counted).
    FailOpen,
    /// Refused for now: `503` over HTTP, `451` over SMTP.
    FailClosed,
    /// Accepted as `held`.
    Hold,
}

impl ScanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tag => "tag",
            Self::Hold => "hold",
            Self::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Tag, Self::Hold, Self::Reject]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

impl OnScanError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailOpen => "fail_open",
            Self::FailClosed => "fail_closed",
            Self::Hold => "hold",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::FailOpen, Self::FailClosed, Self::Hold]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

impl ScanConfig {
    pub fn enabled(&self) -> bool {
        self.rspamd_url.is_some() || self.clamd_addr.is_some()
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.rspamd_url {
            let ok = url::Url::parse(url.expose())
                .is_ok_and(|u| u.scheme() == "http" && u.host().is_some());
            anyhow::ensure!(
                ok,
                "scan.rspamd_url: `{url}` is not an http URL like http://127.0.0.1:11333"
            );
        }
        anyhow::ensure!(
            self.timeout_ms > 0 && self.max_bytes > 0 && self.hold_hours > 0,
            "scan.timeout_ms, scan.max_bytes and scan.hold_hours must be positive"
        );
        Ok(())
    }
}
