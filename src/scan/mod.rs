//! Content policy: every message is scanned at accept, before the 202/250, by rspamd (spam)
//! and clamd (viruses) at once, and the project's policy says what each verdict does:
//! `reject` (nothing stored), `hold` (stored as `held` until released or discarded) or `tag`
//! (headers added to the stored MIME). A scanner that fails or is slow is handled by
//! `on_error`; a timeout bounds every accept. A message larger than `max_bytes` is not sent
//! to the scanners, and `oversize` decides (by default as `on_error` does).
//!
//! The scanners see the message as the client wrote it: before tracking rewrites its links,
//! and without the `X-Spam-*` and `X-Virus-*` headers only they may set (`strip_headers`).
//!
//! - `rspamd`: the `/checkv2` HTTP protocol.
//! - `clamd`: the `INSTREAM` protocol, over TCP or a unix socket.

pub mod clamd;
pub mod rspamd;

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    config::{OnScanError, ScanAction, ScanConfig},
    store::projects::{Project, ProjectCache},
};
use clamd::{Clamd, ClamdVerdict};
use rspamd::{Rspamd, RspamdVerdict};

/// rspamd actions that count as spam when no `scan.spam_score` is set.
const SPAM_ACTIONS: [&str; 3] = ["reject", "rewrite subject", "add header"];

pub struct Scanner {
    rspamd: Option<Rspamd>,
    clamd: Option<Clamd>,
    config: ScanConfig,
    pool: PgPool,
    projects: ProjectCache,
}

/// What the policy makes of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Ruling {
    /// Store and send; `headers` (from `tag`) go on top of the stored MIME.
    Accept {
        headers: Vec<(String, String)>,
        /// The verdicts, kept with the message.
        verdict: Value,
    },
    /// Store as `held`, for this reason.
    Hold {
        reason: String,
        headers: Vec<(String, String)>,
        verdict: Value,
    },
    /// Refuse: `scanner` found something (`virus`: a virus, else spam).
    Reject {
        scanner: &'static str,
        detail: String,
        virus: bool,
    },
    /// A scanner could not answer and the policy is `fail_closed`.
    Unavailable(String),
    /// Larger than `scan.max_bytes`, and the policy refuses what it cannot scan.
    TooLarge(String),
}

/// The policy in force for one project.
#[derive(Debug, Clone, Copy)]
struct Policy {
    spam: ScanAction,
    virus: ScanAction,
    on_error: OnScanError,
    /// For messages larger than `scan.max_bytes`.
    oversize: OnScanError,
}

impl Scanner {
    /// `None` when no scanner is configured.
    pub fn new(
        config: &ScanConfig,
        pool: PgPool,
        projects: ProjectCache,
    ) -> anyhow::Result<Option<Self>> {
        if !config.enabled() {
            return Ok(None);
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        Ok(Some(Self {
            rspamd: config
                .rspamd_url
                .as_ref()
                .map(|url| Rspamd::new(url.expose(), timeout))
                .transpose()?,
            clamd: config.clamd_addr.as_deref().map(|a| Clamd::new(a, timeout)),
            config: config.clone(),
            pool,
            projects,
        }))
    }

    /// For the start-up line.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(url) = &self.config.rspamd_url {
            parts.push(format!("rspamd {url}"));
        }
        if let Some(addr) = &self.config.clamd_addr {
            parts.push(format!("clamd {addr}"));
        }
        format!(
            "{} (spam: {}, virus: {}, on error: {})",
            parts.join(", "),
            self.config.spam.as_str(),
            self.config.virus.as_str(),
            self.config.on_error.as_str()
        )
    }

    fn policy(&self, project: Option<&Project>) -> Policy {
        let on_error = project
            .and_then(|p| p.scan_on_error.as_deref())
            .and_then(OnScanError::parse)
            .unwrap_or(self.config.on_error);
        Policy {
            spam: project
                .and_then(|p| p.scan_spam.as_deref())
                .and_then(ScanAction::parse)
                .unwrap_or(self.config.spam),
            virus: project
                .and_then(|p| p.scan_virus.as_deref())
                .and_then(ScanAction::parse)
                .unwrap_or(self.config.virus),
            on_error,
            oversize: self.config.oversize.unwrap_or(on_error),
        }
    }

    /// Scans one message of `project` with both scanners at once and applies the policy.
    pub async fn check(
        &self,
        project: Uuid,
        message: Uuid,
        mime: &[u8],
        from: &str,
        rcpts: &[&str],
    ) -> sqlx::Result<Ruling> {
        let policy = self.policy(self.projects.get(&self.pool, project).await?.as_ref());
        if mime.len() > self.config.max_bytes {
            let (size, limit) = (mime.len(), self.config.max_bytes);
            metrics::counter!("mailgate_scan_total", "scanner" => "all", "verdict" => "skipped")
                .increment(1);
            // Never passed silently: an operator reading the log sees every unscanned message.
            tracing::warn!(
                %project, id = %message, size, limit, policy = policy.oversize.as_str(),
                "content scan skipped: the message is larger than scan.max_bytes (scan.oversize decides)"
            );
            return Ok(oversize(policy.oversize, size, limit));
        }
        let queue_id = message.to_string();
        let spam = async {
            match &self.rspamd {
                Some(r) => Some(r.check(mime, from, rcpts, &queue_id).await),
                None => None,
            }
        };
        let virus = async {
            match &self.clamd {
                Some(c) => Some(c.scan(mime).await),
                None => None,
            }
        };
        let (spam, virus) = tokio::join!(spam, virus);
        Ok(decide(&self.config, policy, spam, virus))
    }
}

/// What `scan.oversize` makes of a message of `size` bytes, over `scan.max_bytes` (`limit`).
fn oversize(action: OnScanError, size: usize, limit: usize) -> Ruling {
    let why = format!(
        "the message is {size} bytes, larger than scan.max_bytes ({limit} bytes), so it was not scanned"
    );
    match action {
        OnScanError::FailOpen => Ruling::Accept {
            headers: Vec::new(),
            verdict: json!({"skipped": why}),
        },
        OnScanError::Hold => Ruling::Hold {
            reason: format!("not scanned: {why}"),
            headers: Vec::new(),
            verdict: json!({"skipped": why}),
        },
        OnScanError::FailClosed => {
            Ruling::TooLarge(format!("{why}; the content policy refuses unscanned mail"))
        }
    }
}

/// Whether a header of this name is one only the scanners may set (`X-Spam-*`, `X-Virus-*`):
/// a client that sets them could pass its mail off as scanned and clean.
pub fn is_scanner_header(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    lower.starts_with("x-spam-") || lower.starts_with("x-virus-")
}

/// `mime` without the scanner's header fields (and their folded lines) in its top-level
/// header section; the body and every other byte stay as they are. Borrowed when there are
/// none.
pub fn strip_headers(mime: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut kept: Vec<std::ops::Range<usize>> = Vec::new();
    let mut dropping = false;
    let mut dropped = false;
    let mut at = 0;
    while at < mime.len() {
        let end = mime[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(mime.len(), |i| at + i + 1);
        let line = &mime[at..end];
        if line == b"\r\n" || line == b"\n" {
            // The blank line ending the header section, and the body after it, stay.
            kept.push(at..mime.len());
            break;
        }
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !folded {
            dropping = line
                .iter()
                .position(|&b| b == b':')
                .is_some_and(|colon| is_scanner_header(&String::from_utf8_lossy(&line[..colon])));
        }
        if dropping {
            dropped = true;
        } else {
            match kept.last_mut() {
                Some(last) if last.end == at => last.end = end,
                _ => kept.push(at..end),
            }
        }
        at = end;
    }
    if !dropped {
        return std::borrow::Cow::Borrowed(mime);
    }
    let mut out = Vec::with_capacity(mime.len());
    for range in kept {
        out.extend_from_slice(&mime[range]);
    }
    std::borrow::Cow::Owned(out)
}

/// The policy applied to what the scanners said (`None`: not configured).
fn decide(
    config: &ScanConfig,
    policy: Policy,
    spam: Option<Result<RspamdVerdict, String>>,
    virus: Option<Result<ClamdVerdict, String>>,
) -> Ruling {
    let mut verdict = serde_json::Map::new();
    let mut headers = Vec::new();
    // The strictest action wins; each finding is counted.
    let mut worst: Option<(ScanAction, String, &'static str, bool)> = None;
    let mut errors = Vec::new();
    // On a tie a virus is named rather than spam: it is the more specific finding.
    let mut found = |action: ScanAction, why: String, scanner: &'static str, is_virus: bool| {
        if worst
            .as_ref()
            .is_none_or(|(a, _, _, v)| action > *a || (action == *a && is_virus && !v))
        {
            worst = Some((action, why, scanner, is_virus));
        }
    };
    match spam {
        Some(Ok(v)) => {
            let symbols = v.symbol_names();
            let is_spam = match config.spam_score {
                Some(threshold) => v.score >= threshold,
                None => SPAM_ACTIONS.contains(&v.action.as_str()),
            };
            metrics::counter!("mailgate_scan_total", "scanner" => "rspamd",
                "verdict" => if is_spam { "spam" } else { "clean" })
            .increment(1);
            verdict.insert(
                "rspamd".into(),
                json!({"action": v.action, "score": v.score, "required_score": v.required_score,
                       "spam": is_spam, "symbols": symbols}),
            );
            if is_spam {
                let shown: Vec<&str> = symbols.iter().take(8).map(String::as_str).collect();
                headers.push((
                    "X-Spam-Status".to_string(),
                    format!(
                        "Yes, score={:.1} required={:.1} action={} tests={}",
                        v.score,
                        v.required_score,
                        v.action,
                        shown.join(",")
                    ),
                ));
                headers.push(("X-Spam-Score".to_string(), format!("{:.1}", v.score)));
                found(
                    policy.spam,
                    format!(
                        "rspamd: spam (action {}, score {:.1}, symbols {})",
                        v.action,
                        v.score,
                        shown.join(", ")
                    ),
                    "rspamd",
                    false,
                );
            }
        }
        Some(Err(e)) => {
            metrics::counter!("mailgate_scan_errors_total", "scanner" => "rspamd").increment(1);
            errors.push(e);
        }
        None => {}
    }
    match virus {
        Some(Ok(ClamdVerdict::Clean)) => {
            metrics::counter!("mailgate_scan_total", "scanner" => "clamd", "verdict" => "clean")
                .increment(1);
            verdict.insert("clamd".into(), json!({"virus": null}));
        }
        Some(Ok(ClamdVerdict::Virus(name))) => {
            metrics::counter!("mailgate_scan_total", "scanner" => "clamd", "verdict" => "virus")
                .increment(1);
            verdict.insert("clamd".into(), json!({"virus": name}));
            headers.push(("X-Virus-Status".to_string(), format!("Infected ({name})")));
            found(policy.virus, format!("clamd: virus {name}"), "clamd", true);
        }
        Some(Err(e)) => {
            metrics::counter!("mailgate_scan_errors_total", "scanner" => "clamd").increment(1);
            errors.push(e);
        }
        None => {}
    }
    if !errors.is_empty() {
        verdict.insert("errors".into(), json!(errors));
    }
    let verdict = Value::Object(verdict);
    if let Some((ScanAction::Reject, detail, scanner, is_virus)) = &worst {
        return Ruling::Reject {
            scanner,
            detail: detail.clone(),
            virus: *is_virus,
        };
    }
    if !errors.is_empty() {
        let why = errors.join("; ");
        match policy.on_error {
            OnScanError::FailClosed => {
                tracing::warn!(error = %why, "content scan failed; refusing (scan.on_error = fail_closed)");
                return Ruling::Unavailable(why);
            }
            OnScanError::Hold => {
                tracing::warn!(error = %why, "content scan failed; holding the message");
                return Ruling::Hold {
                    reason: format!("not scanned: {why}"),
                    headers,
                    verdict,
                };
            }
            OnScanError::FailOpen => {
                tracing::warn!(error = %why, "content scan failed; accepting unscanned (scan.on_error = fail_open)");
            }
        }
    }
    match worst {
        Some((ScanAction::Hold, reason, ..)) => Ruling::Hold {
            reason,
            headers,
            verdict,
        },
        _ => Ruling::Accept { headers, verdict },
    }
}

/// `headers` on top of `mime` (the header section is where new fields may go first).
pub fn prepend_headers(mime: &[u8], headers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(mime.len() + 200);
    for (name, value) in headers {
        // Values come from scanners: one line, nothing that could end the field early.
        let value: String = value
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(mime);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(action: &str, score: f64) -> RspamdVerdict {
        RspamdVerdict {
            action: action.into(),
            score,
            required_score: 15.0,
            symbols: [("GTUBE".to_string(), json!({"score": 0.0}))].into(),
        }
    }

    fn policy(spam: ScanAction, virus: ScanAction, on_error: OnScanError) -> Policy {
        Policy {
            spam,
            virus,
            on_error,
            oversize: on_error,
        }
    }

    #[test]
    fn oversize_mail_follows_its_policy() {
        assert!(matches!(
            oversize(OnScanError::FailOpen, 11, 10),
            Ruling::Accept { verdict, .. } if verdict["skipped"].as_str().unwrap().contains("11 bytes")
        ));
        assert!(matches!(
            oversize(OnScanError::Hold, 11, 10),
            Ruling::Hold { reason, .. } if reason.starts_with("not scanned: ")
        ));
        assert!(matches!(
            oversize(OnScanError::FailClosed, 11, 10),
            Ruling::TooLarge(why) if why.contains("scan.max_bytes (10 bytes)")
        ));
    }

    #[test]
    fn only_the_scanners_headers_are_stripped_and_only_from_the_header_section() {
        let mime = b"X-Spam-Status: No,\r\n tests=NONE\r\nFrom: a@example.com\r\nx-virus-status: Clean\r\nX-Spamish: kept\r\nSubject: s\r\n\r\nX-Spam-Status: in the body stays\r\n";
        assert_eq!(
            String::from_utf8(strip_headers(mime).into_owned()).unwrap(),
            "From: a@example.com\r\nX-Spamish: kept\r\nSubject: s\r\n\r\nX-Spam-Status: in the body stays\r\n"
        );
        let clean = b"From: a@example.com\r\n\r\nbody\r\n";
        assert!(matches!(
            strip_headers(clean),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn the_strictest_verdict_wins() {
        let c = ScanConfig::default();
        let p = policy(ScanAction::Hold, ScanAction::Reject, OnScanError::FailOpen);
        let d = decide(
            &c,
            p,
            Some(Ok(verdict("reject", 15.0))),
            Some(Ok(ClamdVerdict::Virus("Eicar".into()))),
        );
        assert!(matches!(d, Ruling::Reject { virus: true, .. }), "{d:?}");
        let d = decide(
            &c,
            p,
            Some(Ok(verdict("reject", 15.0))),
            Some(Ok(ClamdVerdict::Clean)),
        );
        assert!(matches!(d, Ruling::Hold { .. }), "{d:?}");
        let d = decide(
            &c,
            p,
            Some(Ok(verdict("no action", 1.0))),
            Some(Ok(ClamdVerdict::Clean)),
        );
        assert!(
            matches!(&d, Ruling::Accept { headers, .. } if headers.is_empty()),
            "{d:?}"
        );
    }

    #[test]
    fn tag_adds_headers_and_errors_follow_on_error() {
        let c = ScanConfig::default();
        let tag = policy(ScanAction::Tag, ScanAction::Tag, OnScanError::FailOpen);
        let Ruling::Accept { headers, .. } = decide(
            &c,
            tag,
            Some(Ok(verdict("add header", 7.0))),
            Some(Ok(ClamdVerdict::Virus("Eicar".into()))),
        ) else {
            panic!()
        };
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-Spam-Status", "X-Spam-Score", "X-Virus-Status"]);
        let down = || Some(Err("cannot connect to rspamd".to_string()));
        assert!(matches!(
            decide(&c, tag, down(), None),
            Ruling::Accept { .. }
        ));
        let closed = policy(ScanAction::Tag, ScanAction::Tag, OnScanError::FailClosed);
        assert!(matches!(
            decide(&c, closed, down(), None),
            Ruling::Unavailable(_)
        ));
        let hold = policy(ScanAction::Tag, ScanAction::Tag, OnScanError::Hold);
        assert!(matches!(
            decide(&c, hold, down(), None),
            Ruling::Hold { .. }
        ));
        // A virus found while the other scanner is down is still rejected.
        let reject = policy(
            ScanAction::Reject,
            ScanAction::Reject,
            OnScanError::FailClosed,
        );
        assert!(matches!(
            decide(
                &c,
                reject,
                down(),
                Some(Ok(ClamdVerdict::Virus("x".into())))
            ),
            Ruling::Reject { .. }
        ));
    }

    #[test]
    fn a_score_threshold_replaces_the_action_rule() {
        let c = ScanConfig {
            spam_score: Some(5.0),
            ..ScanConfig::default()
        };
        let p = policy(
            ScanAction::Reject,
            ScanAction::Reject,
            OnScanError::FailOpen,
        );
        assert!(matches!(
            decide(&c, p, Some(Ok(verdict("no action", 6.0))), None),
            Ruling::Reject { .. }
        ));
        assert!(matches!(
            decide(&c, p, Some(Ok(verdict("reject", 4.0))), None),
            Ruling::Accept { .. }
        ));
    }
}
