//! Checking a sending domain's records in DNS (through `[dns]`), and what the findings make
//! of its status, Resend's way:
//!
//! - `not_started` until the first `verify`;
//! - `pending` while a required record is missing, rechecked every `check_interval_secs`,
//!   `failed` after `grace_hours`;
//! - `verified` when every required record is there, rechecked every
//!   `verified_interval_secs`;
//! - a verified domain that loses a record is `temporary_failure` (mail is still signed and
//!   sent) and `failed` after `grace_hours` unless the record comes back.
//!
//! A DNS answer that is no answer (timeout, SERVFAIL) changes nothing: the check is tried
//! again later. Status changes send `domain.verified`, `domain.degraded`, `domain.failed`.

use chrono::{DateTime, Duration, Utc};
use hickory_resolver::proto::rr::RecordType;
use serde_json::{Map, Value, json};

use super::records::{Expect, Wanted};
use crate::{
    delivery::dns::{Dns, DnsFailure, Published},
    store::domains::{CheckOutcome, DomainRow},
};

/// SPF's limit on DNS-querying terms (RFC 7208 §4.6.4).
const SPF_MAX_LOOKUPS: usize = 10;

/// What DNS said about one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    Matches {
        found: String,
    },
    /// Not there, or not as asked: why, and what was found.
    Wrong {
        problem: String,
        found: Option<String>,
    },
    /// DNS did not answer.
    Unknown(String),
}

/// Looks one record up and compares it with what is asked.
pub async fn look(dns: &Dns, wanted: &Wanted) -> Finding {
    let name = &wanted.record.name;
    match &wanted.expect {
        Expect::Dkim { public_key } => match txt(dns, name).await {
            Err(why) => Finding::Unknown(why),
            Ok(records) => {
                let dkim: Vec<&String> = records
                    .iter()
                    .filter(|r| tag(r, "p").is_some() || r.contains("DKIM1"))
                    .collect();
                match dkim.first() {
                    None => missing(),
                    Some(found) => {
                        if tag(found, "p").as_deref() == Some(public_key.as_str()) {
                            Finding::Matches {
                                found: found.to_string(),
                            }
                        } else {
                            different(found)
                        }
                    }
                }
            }
        },
        Expect::Spf { terms } => match txt(dns, name).await {
            Err(why) => Finding::Unknown(why),
            Ok(records) => {
                let spf: Vec<&String> = records.iter().filter(|r| is_spf(r)).collect();
                match spf.as_slice() {
                    [] => missing(),
                    [one] => {
                        let have: Vec<String> = one
                            .split_whitespace()
                            .map(|t| t.trim_start_matches('+').to_ascii_lowercase())
                            .collect();
                        let lacking: Vec<&String> = terms
                            .iter()
                            .filter(|t| !have.contains(&t.to_ascii_lowercase()))
                            .collect();
                        if !lacking.is_empty() {
                            return Finding::Wrong {
                                problem: format!(
                                    "different value: lacks {}",
                                    lacking
                                        .iter()
                                        .map(|t| t.as_str())
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                ),
                                found: Some(one.to_string()),
                            };
                        }
                        match spf_lookups(dns, one, 0).await {
                            Err(why) => Finding::Unknown(why),
                            Ok(n) if n > SPF_MAX_LOOKUPS => Finding::Wrong {
                                problem: format!(
                                    "more than 10 DNS lookups ({n}): receivers treat the SPF record as an error (RFC 7208 §4.6.4)"
                                ),
                                found: Some(one.to_string()),
                            },
                            Ok(_) => Finding::Matches {
                                found: one.to_string(),
                            },
                        }
                    }
                    several => Finding::Wrong {
                        problem: format!(
                            "{} SPF records: a domain may publish only one (RFC 7208 §3.2); merge them",
                            several.len()
                        ),
                        found: Some(
                            several
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(" | "),
                        ),
                    },
                }
            }
        },
        Expect::Dmarc => match txt(dns, name).await {
            Err(why) => Finding::Unknown(why),
            Ok(records) => match records
                .iter()
                .find(|r| r.trim_start().to_ascii_lowercase().starts_with("v=dmarc1"))
            {
                Some(found) => Finding::Matches {
                    found: found.clone(),
                },
                None => missing(),
            },
        },
        Expect::Mx { host } => match dns.published(name, RecordType::MX).await {
            Err(DnsFailure::Transient(why)) | Err(DnsFailure::NoSuchDomain(why)) => {
                Finding::Unknown(why)
            }
            Ok(Published::Nothing) => missing(),
            Ok(Published::Records(records)) => {
                let found = records.join(", ");
                let names_host = records.iter().any(|r| {
                    r.split_whitespace()
                        .nth(1)
                        .is_some_and(|h| h.eq_ignore_ascii_case(host))
                });
                if names_host {
                    Finding::Matches { found }
                } else {
                    different(&found)
                }
            }
        },
        Expect::Cname { target } => match dns.published(name, RecordType::CNAME).await {
            Err(DnsFailure::Transient(why)) | Err(DnsFailure::NoSuchDomain(why)) => {
                Finding::Unknown(why)
            }
            Ok(Published::Nothing) => missing(),
            Ok(Published::Records(records)) => {
                let found = records.first().cloned().unwrap_or_default();
                if found.eq_ignore_ascii_case(target) {
                    Finding::Matches { found }
                } else {
                    different(&found)
                }
            }
        },
    }
}

fn missing() -> Finding {
    Finding::Wrong {
        problem: "missing".into(),
        found: None,
    }
}

fn different(found: &str) -> Finding {
    Finding::Wrong {
        problem: "different value".into(),
        found: Some(found.to_string()),
    }
}

async fn txt(dns: &Dns, name: &str) -> Result<Vec<String>, String> {
    match dns.published(name, RecordType::TXT).await {
        Ok(Published::Records(r)) => Ok(r),
        Ok(Published::Nothing) => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

fn is_spf(txt: &str) -> bool {
    let t = txt.trim_start().to_ascii_lowercase();
    t == "v=spf1" || t.starts_with("v=spf1 ")
}

/// A tag's value in a `k=v; k=v` record, whitespace removed.
fn tag(record: &str, name: &str) -> Option<String> {
    record.split(';').find_map(|t| {
        let (k, v) = t.split_once('=')?;
        (k.trim() == name).then(|| v.split_whitespace().collect())
    })
}

/// The DNS-querying terms of an SPF record, the ones its includes and redirect bring in
/// counted too (RFC 7208 §4.6.4); stops counting past the limit.
fn spf_lookups<'a>(
    dns: &'a Dns,
    record: &'a str,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, String>> + Send + 'a>> {
    Box::pin(async move {
        let mut count = 0;
        for term in record.split_whitespace().skip(1) {
            let term = term
                .trim_start_matches(['+', '-', '~', '?'])
                .to_ascii_lowercase();
            let target = if let Some(t) = term.strip_prefix("include:") {
                count += 1;
                Some(t.to_string())
            } else if let Some(t) = term.strip_prefix("redirect=") {
                count += 1;
                Some(t.to_string())
            } else {
                if term == "a"
                    || term.starts_with("a:")
                    || term.starts_with("a/")
                    || term == "mx"
                    || term.starts_with("mx:")
                    || term.starts_with("mx/")
                    || term == "ptr"
                    || term.starts_with("ptr:")
                    || term.starts_with("exists:")
                {
                    count += 1;
                }
                None
            };
            if count > SPF_MAX_LOOKUPS || depth >= SPF_MAX_LOOKUPS {
                return Ok(count);
            }
            if let Some(target) = target {
                let inner = txt(dns, &target).await?;
                if let Some(spf) = inner.iter().find(|r| is_spf(r)) {
                    count += spf_lookups(dns, spf, depth + 1).await?;
                }
            }
        }
        Ok(count)
    })
}

/// What a check makes of a domain: its new status and timestamps, and the event to send.
pub struct Verdict {
    pub status: &'static str,
    pub checks: Value,
    pub pending_since: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub next_check_at: Option<DateTime<Utc>>,
    pub event: Option<&'static str>,
}

impl Verdict {
    pub fn outcome(&self) -> CheckOutcome<'_> {
        CheckOutcome {
            status: self.status,
            checks: &self.checks,
            pending_since: self.pending_since,
            failing_since: self.failing_since,
            verified_at: self.verified_at,
            next_check_at: self.next_check_at,
        }
    }
}

/// Timing of checks, from `[domains]`.
pub struct Schedule {
    pub check_every: Duration,
    pub verified_every: Duration,
    pub grace: Duration,
}

/// The domain's new state after `findings` (one per wanted record, in order), at `now`.
/// `asked`: a `verify` call, which restarts a failed or not-started domain.
pub fn judge(
    domain: &DomainRow,
    wanted: &[Wanted],
    findings: &[Finding],
    schedule: &Schedule,
    now: DateTime<Utc>,
    asked: bool,
) -> Verdict {
    let required_ok = wanted
        .iter()
        .zip(findings)
        .filter(|(w, _)| w.record.required)
        .all(|(_, f)| matches!(f, Finding::Matches { .. }));
    let unknown = findings.iter().any(|f| matches!(f, Finding::Unknown(_)));
    let was = domain.status.as_str();
    let grace_over =
        |since: Option<DateTime<Utc>>| since.is_some_and(|s| now - s >= schedule.grace);
    let mut v = Verdict {
        status: "pending",
        checks: Value::Null,
        pending_since: domain.pending_since,
        failing_since: domain.failing_since,
        verified_at: domain.verified_at,
        next_check_at: Some(now + schedule.check_every),
        event: None,
    };
    if required_ok {
        v.status = "verified";
        v.pending_since = None;
        v.failing_since = None;
        v.verified_at = Some(now);
        v.next_check_at = Some(now + schedule.verified_every);
        if was != "verified" {
            v.event = Some("domain.verified");
        }
    } else if unknown && !(asked && matches!(was, "not_started" | "failed")) {
        // No answer is no news: keep the status, try again soon.
        v.status = status_name(was);
    } else {
        match was {
            "verified" | "temporary_failure" => {
                let since = domain.failing_since.unwrap_or(now);
                v.failing_since = Some(since);
                if grace_over(Some(since)) {
                    v.status = "failed";
                    v.next_check_at = None;
                    v.event = Some("domain.failed");
                } else {
                    v.status = "temporary_failure";
                    if was == "verified" {
                        v.event = Some("domain.degraded");
                    }
                }
            }
            "pending" if !asked || domain.pending_since.is_some() => {
                let since = domain.pending_since.unwrap_or(now);
                v.pending_since = Some(since);
                if grace_over(Some(since)) {
                    v.status = "failed";
                    v.next_check_at = None;
                    v.event = Some("domain.failed");
                }
            }
            _ => {
                // not_started or failed, asked again: a new pending spell.
                v.pending_since = Some(now);
                v.failing_since = None;
            }
        }
    }
    // Each record's finding, under the status it leaves the record in.
    let mut checks = Map::new();
    for (w, f) in wanted.iter().zip(findings) {
        let (status, problem, found) = match f {
            Finding::Matches { found } => ("verified", None, Some(found.clone())),
            Finding::Wrong { problem, found } => {
                let status = match v.status {
                    "failed" => "failed",
                    "temporary_failure" => "temporary_failure",
                    _ => "pending",
                };
                (status, Some(problem.clone()), found.clone())
            }
            Finding::Unknown(why) => ("pending", Some(format!("DNS did not answer: {why}")), None),
        };
        checks.insert(
            super::records::check_key(&w.record.record, &w.record.name),
            json!({"status": status, "problem": problem, "found": found}),
        );
    }
    v.checks = Value::Object(checks);
    v
}

fn status_name(s: &str) -> &'static str {
    match s {
        "verified" => "verified",
        "temporary_failure" => "temporary_failure",
        "failed" => "failed",
        "not_started" => "not_started",
        _ => "pending",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::domains::records::Record;
    use sqlx::types::Json;
    use uuid::Uuid;

    fn domain(
        status: &str,
        pending: Option<DateTime<Utc>>,
        failing: Option<DateTime<Utc>>,
    ) -> DomainRow {
        DomainRow {
            id: Uuid::nil(),
            project_id: Uuid::nil(),
            name: "example.com".into(),
            status: status.into(),
            dmarc_rua: None,
            return_path: "bounces".into(),
            checks: Json(json!({})),
            pending_since: pending,
            failing_since: failing,
            verified_at: None,
            last_checked_at: None,
            next_check_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn dkim() -> Wanted {
        Wanted {
            record: Record {
                record: "DKIM".into(),
                kind: "TXT".into(),
                name: "mg1._domainkey.example.com".into(),
                value: "v=DKIM1; k=rsa; p=AAAA".into(),
                ttl: 3600,
                priority: None,
                status: "not_started".into(),
                required: true,
                problem: None,
                found: None,
            },
            expect: Expect::Dkim {
                public_key: "AAAA".into(),
            },
        }
    }

    const SCHEDULE: Schedule = Schedule {
        check_every: Duration::minutes(5),
        verified_every: Duration::days(1),
        grace: Duration::hours(72),
    };

    #[test]
    fn statuses_move_as_resend_describes() {
        let now = Utc::now();
        let ok = [Finding::Matches {
            found: "v=DKIM1; p=AAAA".into(),
        }];
        let gone = [missing()];
        let w = [dkim()];
        // Asked, missing: pending; later still missing within 72 h: pending; after: failed.
        let v = judge(
            &domain("not_started", None, None),
            &w,
            &gone,
            &SCHEDULE,
            now,
            true,
        );
        assert_eq!((v.status, v.event), ("pending", None));
        let v = judge(
            &domain("pending", Some(now - Duration::hours(71)), None),
            &w,
            &gone,
            &SCHEDULE,
            now,
            false,
        );
        assert_eq!(v.status, "pending");
        let v = judge(
            &domain("pending", Some(now - Duration::hours(73)), None),
            &w,
            &gone,
            &SCHEDULE,
            now,
            false,
        );
        assert_eq!((v.status, v.event), ("failed", Some("domain.failed")));
        assert_eq!(v.next_check_at, None);
        // Found: verified, once announced.
        let v = judge(
            &domain("pending", Some(now), None),
            &w,
            &ok,
            &SCHEDULE,
            now,
            false,
        );
        assert_eq!((v.status, v.event), ("verified", Some("domain.verified")));
        let v = judge(
            &domain("verified", None, None),
            &w,
            &ok,
            &SCHEDULE,
            now,
            false,
        );
        assert_eq!((v.status, v.event), ("verified", None));
        // A verified domain loses its record: degraded, then failed after the grace.
        let v = judge(
            &domain("verified", None, None),
            &w,
            &gone,
            &SCHEDULE,
            now,
            false,
        );
        assert_eq!(
            (v.status, v.event),
            ("temporary_failure", Some("domain.degraded"))
        );
        let v = judge(
            &domain("temporary_failure", None, Some(now - Duration::hours(73))),
            &w,
            &gone,
            &SCHEDULE,
            now,
            false,
        );
        assert_eq!((v.status, v.event), ("failed", Some("domain.failed")));
        // DNS that does not answer changes nothing.
        let v = judge(
            &domain("verified", None, None),
            &w,
            &[Finding::Unknown("timeout".into())],
            &SCHEDULE,
            now,
            false,
        );
        assert_eq!((v.status, v.event), ("verified", None));
        // The record's own status says what was found.
        let v = judge(
            &domain("verified", None, None),
            &w,
            &[different("v=DKIM1; p=BBBB")],
            &SCHEDULE,
            now,
            false,
        );
        let check = &v.checks["DKIM mg1._domainkey.example.com"];
        assert_eq!(check["status"], "temporary_failure");
        assert_eq!(check["problem"], "different value");
        assert_eq!(check["found"], "v=DKIM1; p=BBBB");
    }
}
