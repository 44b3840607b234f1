//! What one inbound message means: the [`Processor`], the handler the inbound runner gives
//! each message. It reads (the message, the recipient job a VERP token names) and decides;
//! `store::inbound::complete` writes the outcome and its effects.

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    DomainRole, Domains, InboundQueue, received,
    report::{self, Report},
};
use crate::{
    config::InboundConfig,
    domain::RecipientStatus,
    queue::Handler,
    store::inbound::{self as store, Effect, InboundJob, Outcome, RecipientReport, VerpTarget},
    tokens::TokenKey,
};

/// Attempts before a report about a recipient that never finishes delivery is given up.
const MAX_ATTEMPTS: i32 = 30;

/// Decides what one inbound message means. Reads only; `store::inbound::complete` writes.
pub struct Processor {
    pool: PgPool,
    domains: Domains,
    key: TokenKey,
    max_attachment_bytes: usize,
    max_payload_bytes: usize,
}

/// What one envelope recipient of an inbound message came to.
struct Finding {
    kind: &'static str,
    project_id: Option<Uuid>,
    message_id: Option<Uuid>,
    detail: String,
    effect: Option<Effect>,
    /// The report is about a recipient still being delivered: look again later.
    retry: bool,
}

impl Finding {
    fn nothing(kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            project_id: None,
            message_id: None,
            detail: detail.into(),
            effect: None,
            retry: false,
        }
    }
}

/// Which finding names the row when one message had several recipients: what changed
/// something first.
const PRIORITY: [&str; 8] = [
    "bounce",
    "complaint",
    "delay",
    "received",
    "forged",
    "unmatched",
    "not_a_report",
    "ignored",
];

impl Handler<InboundQueue> for Processor {
    async fn handle(&self, job: InboundJob) -> Outcome {
        match self.process(&job).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(inbound = %job.id, error = %e, "inbound processing failed; retrying");
                Outcome {
                    id: job.id,
                    attempt: job.attempts,
                    retry_at: Some(Utc::now() + chrono::Duration::seconds(10)),
                    kind: "pending",
                    project_id: None,
                    message_id: None,
                    detail: Some(format!("processing failed: {e}")),
                    effects: Vec::new(),
                }
            }
        }
    }
}

impl Processor {
    pub fn new(pool: PgPool, domains: Domains, key: TokenKey, config: &InboundConfig) -> Self {
        Self {
            pool,
            domains,
            key,
            max_attachment_bytes: config.max_attachment_bytes,
            max_payload_bytes: config.max_payload_bytes,
        }
    }

    async fn process(&self, job: &InboundJob) -> sqlx::Result<Outcome> {
        let report = report::parse(&job.raw, job.mail_from.is_empty());
        let mut findings = Vec::new();
        let mut received_by = Vec::new();
        for rcpt in &job.rcpt_to {
            let Some((local, domain)) = rcpt.rsplit_once('@') else {
                continue;
            };
            match self.domains.role(domain).await? {
                DomainRole::Bounce => findings.push(self.report(&report, local, domain).await?),
                DomainRole::Inbound(project) if !received_by.contains(&project) => {
                    received_by.push(project);
                    findings.push(self.received(job, project));
                }
                DomainRole::Inbound(_) => {}
                // The listener took it, so the domain was ours then; settings changed since.
                DomainRole::Foreign => findings.push(Finding::nothing(
                    "ignored",
                    format!("{domain} is no longer a bounce or inbound domain"),
                )),
            }
        }
        let retry = findings.iter().any(|f| f.retry) && job.attempts < MAX_ATTEMPTS;
        findings.sort_by_key(|f| PRIORITY.iter().position(|k| *k == f.kind));
        let first = findings.first();
        let detail = findings
            .iter()
            .map(|f| f.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        Ok(Outcome {
            id: job.id,
            attempt: job.attempts,
            retry_at: retry.then(|| {
                let secs = (5i64 << job.attempts.clamp(0, 7)).min(600);
                Utc::now() + chrono::Duration::seconds(secs)
            }),
            kind: first.map_or("ignored", |f| f.kind),
            project_id: first.and_then(|f| f.project_id),
            message_id: first.and_then(|f| f.message_id),
            detail: (!detail.is_empty()).then_some(detail),
            effects: findings.into_iter().filter_map(|f| f.effect).collect(),
        })
    }

    fn received(&self, job: &InboundJob, project: Uuid) -> Finding {
        match received::payload(
            &job.raw,
            job.id,
            &job.mail_from,
            &job.rcpt_to,
            self.max_attachment_bytes,
            self.max_payload_bytes,
        ) {
            Some(payload) => Finding {
                kind: "received",
                project_id: Some(project),
                message_id: None,
                detail: "delivered to the project's webhooks as email.received".into(),
                effect: Some(Effect::Received {
                    project_id: project,
                    payload,
                }),
                retry: false,
            },
            None => Finding::nothing("not_a_report", "not a parsable message"),
        }
    }

    /// A message to a VERP address (or, for a feedback report sent elsewhere, about one).
    async fn report(&self, report: &Report, local: &str, domain: &str) -> sqlx::Result<Finding> {
        let mut token_address = (local.to_string(), domain.to_ascii_lowercase());
        let mut recipient = self.key.verp_recipient(local);
        // Feedback loops report to their own registered address; the original's return path
        // still names the recipient job.
        if recipient.is_none()
            && let Report::Feedback(f) = report
            && let Some((l, d)) = f
                .original_return_path
                .as_deref()
                .and_then(|a| a.rsplit_once('@'))
            && self.domains.role(d).await? == DomainRole::Bounce
        {
            recipient = self.key.verp_recipient(l);
            token_address = (l.to_string(), d.to_ascii_lowercase());
        }
        let is_report = !matches!(report, Report::NotAReport);
        let Some(recipient_id) = recipient else {
            return Ok(Finding::nothing(
                if is_report { "forged" } else { "not_a_report" },
                format!("{local}@{domain} is not a valid return path"),
            ));
        };
        let Some(target) = store::verp_target(&self.pool, recipient_id).await? else {
            return Ok(Finding::nothing(
                "unmatched",
                format!("recipient job {recipient_id} no longer exists"),
            ));
        };
        // A project's token is only good at that project's bounce domain (or the server's,
        // when the project has none) or its sending domains' return paths.
        if !self
            .domains
            .is_return_path_of(
                target.project_id,
                target.bounce_domain.as_deref(),
                &token_address.1,
            )
            .await?
        {
            return Ok(Finding::nothing(
                "forged",
                format!(
                    "the return path of recipient job {recipient_id} is not at {}",
                    token_address.1
                ),
            ));
        }
        let status: Option<RecipientStatus> = target.status.parse().ok();
        let still_sending = !status.is_some_and(RecipientStatus::is_terminal);
        let mut finding = match report {
            Report::Dsn(dsn) => dsn_finding(dsn, &target),
            Report::Feedback(f) => feedback_finding(f, &target),
            Report::PlainBounce { text } => Finding {
                kind: "bounce",
                project_id: None,
                message_id: None,
                detail: format!("bounce (not an RFC 3464 report) for {}", target.email),
                effect: Some(Effect::Bounce(RecipientReport {
                    smtp_response: Some(text.clone()),
                    detail: "asynchronous bounce, not an RFC 3464 report: matched by its return path; the text is the bounce's".into(),
                    data: json!({"async": true, "dsn": null}),
                    ..report_for(&target, true)
                })),
                retry: false,
            },
            Report::NotAReport => Finding::nothing(
                "not_a_report",
                format!("mail to the return path of {} that is not a report", target.email),
            ),
        };
        // A delay notice about a recipient whose delay is already recorded (MTAs repeat them
        // while they retry) changes nothing; `store::inbound` checks again as it writes.
        if matches!(finding.effect, Some(Effect::Delay(_)))
            && store::delay_recorded(
                &mut *self.pool.acquire().await?,
                target.message_id,
                target.recipient_id,
            )
            .await?
        {
            finding.effect = None;
            finding
                .detail
                .push_str(" (already reported: not recorded again)");
        }
        if finding.effect.is_some() {
            finding.retry = still_sending;
        }
        finding.project_id = Some(target.project_id);
        finding.message_id = Some(target.message_id);
        Ok(finding)
    }
}

fn report_for(target: &VerpTarget, suppress: bool) -> RecipientReport {
    RecipientReport {
        recipient_id: target.recipient_id,
        message_id: target.message_id,
        email: target.email.clone(),
        smtp_code: None,
        enhanced_code: None,
        smtp_response: None,
        relay_host: None,
        detail: String::new(),
        data: json!({}),
        suppress,
    }
}

fn dsn_finding(dsn: &report::Dsn, target: &VerpTarget) -> Finding {
    // With VERP each return path names one recipient; a DSN about another address was not
    // caused by this job.
    let block = dsn
        .recipients
        .iter()
        .find(|r| r.is_about(&target.email))
        .or_else(|| {
            (dsn.recipients.len() == 1
                && dsn.recipients[0].final_recipient.is_none()
                && dsn.recipients[0].original_recipient.is_none())
            .then(|| &dsn.recipients[0])
        });
    let Some(block) = block else {
        return Finding::nothing(
            "forged",
            format!("a DSN about another address than {}", target.email),
        );
    };
    let data = json!({
        "async": true,
        "dsn": {
            "action": block.action,
            "status": block.status,
            "diagnostic_code": block.diagnostic_code,
            "reporting_mta": dsn.reporting_mta,
            "remote_mta": block.remote_mta,
        },
    });
    let by = dsn.reporting_mta.as_deref().unwrap_or("an unnamed MTA");
    let recorded = |detail: String, suppress: bool| RecipientReport {
        smtp_code: block.smtp_code(),
        enhanced_code: block.status.clone(),
        smtp_response: block.diagnostic_code.clone(),
        relay_host: block.remote_mta.clone(),
        detail,
        data: data.clone(),
        ..report_for(target, suppress)
    };
    match block.action.as_str() {
        "failed" => {
            // `failed` with a 4.x.x status: the MTA gave up on a temporary problem. The mail
            // did not arrive, but the address may be fine, so it is not suppressed.
            let permanent = block.is_permanent_failure();
            Finding {
                kind: "bounce",
                project_id: None,
                message_id: None,
                detail: format!("DSN from {by}: {} failed", target.email),
                effect: Some(Effect::Bounce(recorded(
                    format!("asynchronous bounce reported by {by}"),
                    permanent,
                ))),
                retry: false,
            }
        }
        "delayed" => Finding {
            kind: "delay",
            project_id: None,
            message_id: None,
            detail: format!("DSN from {by}: {} delayed", target.email),
            effect: Some(Effect::Delay(recorded(
                format!("delivery delayed, reported by {by}"),
                false,
            ))),
            retry: false,
        },
        other => Finding::nothing(
            "not_a_report",
            format!(
                "DSN action `{other}` for {}: nothing to record",
                target.email
            ),
        ),
    }
}

fn feedback_finding(f: &report::Feedback, target: &VerpTarget) -> Finding {
    if let Some(rcpt) = &f.original_rcpt_to
        && !rcpt.eq_ignore_ascii_case(&target.email)
    {
        return Finding::nothing(
            "forged",
            format!("a complaint about another address than {}", target.email),
        );
    }
    let by = f.user_agent.as_deref().unwrap_or("a feedback loop");
    Finding {
        kind: "complaint",
        project_id: None,
        message_id: None,
        detail: format!(
            "{} complaint about {} from {by}",
            f.feedback_type, target.email
        ),
        effect: Some(Effect::Complaint(RecipientReport {
            detail: format!("{} report from {by}", f.feedback_type),
            data: json!({
                "feedback": {
                    "type": f.feedback_type,
                    "user_agent": f.user_agent,
                    "source_ip": f.source_ip,
                    "arrival_date": f.arrival_date,
                },
            }),
            ..report_for(target, true)
        })),
        retry: false,
    }
}
