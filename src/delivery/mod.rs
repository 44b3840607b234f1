//! Mail delivery: the handler the queue runner gives each due recipient. It relays through
//! the recipient's upstream pool and says what the upstream answered. One SMTP transaction
//! per recipient keeps every outcome exact.

pub mod classify;
pub mod direct;
pub mod dkim;
pub mod dns;
pub mod egress;
pub mod health;
pub mod intl;
pub mod relay;
pub mod reply;
pub mod return_path;
mod sweep;
pub mod tls_policy;

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use lettre::address::Envelope;
use tracing::Instrument;

use crate::{
    config::DeliveryConfig,
    domain::{EmailAddress, RecipientStatus},
    queue::{
        Handler, Runner,
        mail::{Job, MailQueue, Outcome},
    },
};
pub use dkim::DkimKeys;
pub use relay::Relays;
pub use return_path::{ReturnPath, SendingReturnPaths};

/// The mail queue's runner: leased recipients, relayed by a `Deliverer`.
pub type DeliveryRunner = Runner<MailQueue, Deliverer>;

/// One delivery attempt for one recipient: its relay chain, DKIM, and what the reply means.
pub struct Deliverer {
    relays: Arc<Relays>,
    config: DeliveryConfig,
    dkim: Arc<DkimKeys>,
    return_path: Option<ReturnPath>,
}

impl Handler<MailQueue> for Deliverer {
    async fn handle(&self, job: Job) -> Outcome {
        self.deliver(job).await
    }
}

impl Deliverer {
    pub fn new(relays: Arc<Relays>, config: DeliveryConfig) -> Self {
        Self {
            relays,
            config,
            dkim: Arc::default(),
            return_path: None,
        }
    }

    /// Sends with VERP return paths (see [`ReturnPath`]).
    pub fn with_return_path(mut self, return_path: Option<ReturnPath>) -> Self {
        self.return_path = return_path;
        self
    }

    /// Signs relayed mail with these keys (none by default).
    pub fn with_dkim(mut self, keys: Arc<DkimKeys>) -> Self {
        self.dkim = keys;
        self
    }

    /// One attempt for one recipient, counted by outcome, relay and project.
    pub async fn deliver(&self, job: Job) -> Outcome {
        let relay = match (job.sandbox || self.relays.is_sandbox(), &job.relay) {
            (true, _) => "sandbox".to_string(),
            (false, Some(name)) => name.clone(),
            (false, None) => self
                .relays
                .pick(None)
                .map(|r| r.name.clone())
                .or_else(|| self.relays.direct(None).map(|d| d.name.clone()))
                .unwrap_or_else(|| "none".into()),
        };
        let project = job.project_id.to_string();
        // Every log line of this attempt carries the message id (an info span, so the default
        // filter keeps it; instrumented rather than entered, as the attempt awaits).
        let span =
            tracing::info_span!("deliver", message_id = %job.message_id, attempt = job.attempts);
        let outcome = self.attempt(job).instrument(span).await;
        metrics::counter!("mailgate_deliveries_total",
            "outcome" => outcome.status.as_str(), "relay" => relay, "project" => project)
        .increment(1);
        outcome
    }

    async fn attempt(&self, job: Job) -> Outcome {
        if job.sandbox || self.relays.is_sandbox() {
            return classify::sandbox(&job, self.relays.is_sandbox());
        }
        if let Some(direct) = self.relays.direct(job.relay.as_deref()) {
            return self.attempt_direct(direct, &job).await;
        }
        let Some(chain) = self.relays.chain(job.relay.as_deref()) else {
            let detail = format!(
                "relay `{}` is not configured",
                job.relay.as_deref().unwrap_or("default")
            );
            return self.retry_or_fail(&job, classify::Reply::transient(None, None, detail, None));
        };
        let sender = self
            .return_path
            .as_ref()
            .and_then(|r| r.for_job(&job))
            .unwrap_or_else(|| job.from_addr.clone());
        // Domains go in A-labels (`ada@bücher.example` as `ada@xn--bcher-kva.example`);
        // only a UTF-8 local part needs SMTPUTF8 of the relay (see `intl`).
        let (Ok(from), Ok(to)) = (
            EmailAddress::parse(&sender),
            EmailAddress::parse(&job.email),
        ) else {
            return classify::terminal(
                &job,
                RecipientStatus::Failed,
                "invalid envelope addresses".into(),
            );
        };
        let (from, to) = (from.to_envelope(), to.to_envelope());
        let envelope = match (from.address.parse(), to.address.parse()) {
            (Ok(from), Ok(to)) => Envelope::new(Some(from), vec![to]).ok(),
            _ => None,
        };
        let Some(envelope) = envelope else {
            return classify::terminal(
                &job,
                RecipientStatus::Failed,
                "invalid envelope addresses".into(),
            );
        };
        // Failover: a relay that cannot take the message now (no answer, TLS trouble, a 4xx,
        // no room in its rate or connections, a throttling reply) hands it to the next in the
        // pool; only when all have failed is the recipient deferred. When none failed but
        // none had room, it is not an attempt: the recipient waits for the soonest room.
        let signed = self.dkim.sign_for(job.project_id, &job.mime);
        let mime = signed.as_deref().unwrap_or(&job.mime);
        let intl = intl::Intl::of(&from, &to, mime);
        // A relay that can never take this envelope (no SMTPUTF8) hands it on too; when no
        // relay could, it bounces at once instead of being deferred until too old.
        let mut refused: Option<classify::Reply> = None;
        let mut tried = Vec::new();
        let mut last = None;
        let mut room_in: Option<Duration> = None;
        let mut soonest = |wait: Duration| {
            room_in = Some(room_in.map_or(wait, |w| w.min(wait)));
        };
        for relay in chain {
            if let Err(retry_after) = relay.admit().await {
                not_now(relay, "rate");
                soonest(retry_after);
                tried.push(format!("{} (no room in its rate)", relay.name));
                continue;
            }
            let started = std::time::Instant::now();
            let result = relay.send(&envelope, intl, mime).await;
            let elapsed = started.elapsed();
            if let Err(err @ relay::RelayError::Busy(_)) = &result {
                not_now(relay, "connections");
                soonest(Duration::from_secs(1));
                tried.push(format!("{} ({err})", relay.name));
                continue;
            }
            if let Err(err @ relay::RelayError::NoSmtputf8(_)) = &result {
                tried.push(format!("{} ({err})", relay.name));
                refused.get_or_insert(classify::classify(result, &relay.host));
                continue;
            }
            metrics::histogram!("mailgate_smtp_send_seconds", "relay" => relay.name.clone())
                .record(elapsed.as_secs_f64());
            let reply = classify::classify(result, &relay.host);
            if reply.status != RecipientStatus::Deferred {
                relay.record(elapsed, None);
                let mut reply = reply;
                if !tried.is_empty() {
                    reply.detail = Some(format!(
                        "after failover from {}{}",
                        tried.join(", "),
                        reply.detail.map(|d| format!("; {d}")).unwrap_or_default()
                    ));
                }
                return reply.into_outcome(&job, None);
            }
            let why = reply.detail.clone().unwrap_or_else(|| "deferred".into());
            relay.record(elapsed, Some(&why));
            if reply.is_throttling() {
                let pause = relay.throttled().await;
                not_now(relay, "throttled");
                soonest(pause);
                tried.push(format!(
                    "{} (throttled, paused {} ms: {why})",
                    relay.name,
                    pause.as_millis()
                ));
                // Kept in case the recipient is out of time: then it fails with this reply.
                if last.is_none() {
                    last = Some(reply);
                }
                continue;
            }
            tried.push(format!("{} ({why})", relay.name));
            last = Some(reply);
        }
        if let Some(wait) = room_in
            && last.as_ref().is_none_or(classify::Reply::is_throttling)
            && !self.too_old(&job)
        {
            return postpone(&job, wait, tried.join("; "));
        }
        if let (None, Some(refusal)) = (&last, refused) {
            let mut refusal = refusal;
            if tried.len() > 1 {
                refusal.detail = Some(format!(
                    "{}; no relay could take it: {}",
                    refusal.detail.unwrap_or_default(),
                    tried.join("; ")
                ));
            }
            return refusal.into_outcome(&job, None);
        }
        let mut reply = last.unwrap_or_else(|| {
            classify::Reply::transient(None, None, "no relay had room".into(), None)
        });
        if tried.len() > 1 {
            reply.detail = Some(format!("every relay failed: {}", tried.join("; ")));
        }
        self.retry_or_fail(&job, reply)
    }

    /// One attempt straight to the recipient domain's MX, in one transaction with the
    /// message's other recipients there (see [`direct`]).
    async fn attempt_direct(&self, direct: &direct::Direct, job: &Job) -> Outcome {
        let sender = self
            .return_path
            .as_ref()
            .and_then(|r| r.for_job(job))
            .unwrap_or_else(|| job.from_addr.clone());
        // Domains go in A-labels, for DNS and the envelope alike; a UTF-8 local part needs
        // SMTPUTF8 of the MX (see `intl`).
        let from = match sender.as_str() {
            "" => None,
            s => match EmailAddress::parse(s) {
                Ok(a) => Some(a.to_envelope()),
                Err(_) => return invalid_envelope(job),
            },
        };
        let Ok(to) = EmailAddress::parse(&job.email).map(|a| a.to_envelope()) else {
            return invalid_envelope(job);
        };
        let signed = self.dkim.sign_for(job.project_id, &job.mime);
        let mime = signed.as_deref().unwrap_or(&job.mime);
        let null_sender = crate::domain::EnvelopeAddress {
            address: String::new(),
            needs_smtputf8: false,
        };
        let envelope = direct::Envelope {
            from: from.as_ref().map_or("", |f| f.address.as_str()),
            to: &to.address,
            intl: intl::Intl::of(from.as_ref().unwrap_or(&null_sender), &to, mime),
        };
        match direct.deliver(job, &envelope, mime).await {
            direct::Delivery::Done(reply) => match reply.status {
                RecipientStatus::Deferred => self.retry_or_fail(job, reply),
                _ => reply.into_outcome(job, None),
            },
            // The site had no room or throttled: waiting is not an attempt, unless the
            // recipient is out of time.
            direct::Delivery::NotNow(not_now) if !self.too_old(job) => {
                postpone(job, not_now.wait, not_now.why)
            }
            direct::Delivery::NotNow(not_now) => self.retry_or_fail(
                job,
                not_now
                    .reply
                    .unwrap_or_else(|| classify::Reply::transient(None, None, not_now.why, None)),
            ),
        }
    }

    /// Whether the recipient has been in the queue for `max_age_secs`: then even a relay
    /// with no room ends it (waiting for room is not an attempt, so only age counts).
    fn too_old(&self, job: &Job) -> bool {
        (Utc::now() - job.accepted_at).num_seconds() >= self.config.max_age_secs as i64
    }

    /// A transient failure is retried with exponential backoff and jitter until the
    /// attempts or the age run out; then the recipient has failed.
    fn retry_or_fail(&self, job: &Job, reply: classify::Reply) -> Outcome {
        let age = Utc::now() - job.accepted_at;
        let out_of_attempts = job.attempts >= self.config.max_attempts;
        let too_old = age.num_seconds() >= self.config.max_age_secs as i64;
        if out_of_attempts || too_old {
            let why = if out_of_attempts {
                format!("gave up after {} attempts", job.attempts)
            } else {
                format!("gave up after {} s in the queue", age.num_seconds())
            };
            let mut reply = reply;
            reply.status = RecipientStatus::Failed;
            reply.detail = Some(match reply.detail {
                Some(d) => format!("{why}; last error: {d}"),
                None => why,
            });
            return reply.into_outcome(job, None);
        }
        let delay = backoff(&self.config, job.attempts);
        let next =
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
        reply.into_outcome(job, Some(next))
    }
}

/// The relay had no room: the job goes back to the queue until there is, plus up to a
/// quarter second of jitter so the jobs put back together do not all come back together.
fn postpone(job: &Job, wait: Duration, why: String) -> Outcome {
    use rand::Rng;
    let jitter = Duration::from_millis(rand::rng().random_range(0..250));
    let due = Utc::now() + chrono::Duration::from_std(wait + jitter).unwrap_or_default();
    tracing::debug!(
        recipient_id = job.recipient_id,
        wait_ms = wait.as_millis() as u64,
        why,
        "relay has no room: postponed"
    );
    Outcome {
        recipient_id: job.recipient_id,
        message_id: job.message_id,
        attempt: job.attempts,
        status: RecipientStatus::Deferred,
        next_attempt_at: Some(due),
        smtp_code: None,
        enhanced_code: None,
        smtp_response: None,
        relay_host: None,
        detail: Some(why),
        data: None,
        postponed: true,
    }
}

fn not_now(relay: &relay::Relay, reason: &'static str) {
    metrics::counter!("mailgate_relay_postponed_total", "relay" => relay.name.clone(), "reason" => reason)
        .increment(1);
}

fn invalid_envelope(job: &Job) -> Outcome {
    classify::terminal(
        job,
        RecipientStatus::Failed,
        "invalid envelope addresses".into(),
    )
}

/// `base · 2^(attempt-1)`, capped, ±20 % jitter so retries from a burst do not align.
pub fn backoff(config: &DeliveryConfig, attempt: i32) -> Duration {
    use rand::Rng;
    let exp = config.retry_base_secs * 2f64.powi((attempt - 1).clamp(0, 30));
    let capped = exp.min(config.retry_max_secs);
    let jitter = rand::rng().random_range(0.8..=1.2);
    Duration::from_secs_f64((capped * jitter).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let c = DeliveryConfig {
            retry_base_secs: 10.0,
            retry_max_secs: 100.0,
            ..DeliveryConfig::default()
        };
        let first = backoff(&c, 1).as_secs_f64();
        assert!((8.0..=12.0).contains(&first), "{first}");
        let third = backoff(&c, 3).as_secs_f64();
        assert!((32.0..=48.0).contains(&third), "{third}");
        let late = backoff(&c, 20).as_secs_f64();
        assert!((80.0..=120.0).contains(&late), "{late}");
    }
}
