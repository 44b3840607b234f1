//! Turns what the upstream said into a recipient status: 2xx delivered, 5xx bounced,
//! 4xx and every connection, TLS or timeout trouble deferred.

use chrono::{DateTime, Utc};
use lettre::transport::smtp::response::Response;

use super::relay::RelayError;
use crate::{
    domain::RecipientStatus,
    queue::mail::{Job, Outcome},
};

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: RecipientStatus,
    pub code: Option<i32>,
    pub enhanced: Option<String>,
    pub response: Option<String>,
    pub relay_host: Option<String>,
    pub detail: Option<String>,
}

impl Reply {
    pub fn transient(
        code: Option<i32>,
        response: Option<String>,
        detail: String,
        host: Option<String>,
    ) -> Self {
        Self {
            status: RecipientStatus::Deferred,
            code,
            enhanced: response.as_deref().and_then(enhanced_code),
            response,
            relay_host: host,
            detail: Some(detail),
        }
    }

    pub fn into_outcome(self, job: &Job, next_attempt_at: Option<DateTime<Utc>>) -> Outcome {
        match self.status {
            RecipientStatus::Delivered => {
                tracing::debug!(recipient_id = job.recipient_id, "delivered")
            }
            status => tracing::info!(
                message_id = %job.message_id,
                recipient_id = job.recipient_id,
                attempt = job.attempts,
                status = status.as_str(),
                code = self.code,
                detail = self.detail.as_deref().unwrap_or(""),
                "delivery attempt not delivered"
            ),
        }
        Outcome {
            recipient_id: job.recipient_id,
            attempt: job.attempts,
            status: self.status,
            next_attempt_at,
            smtp_code: self.code,
            enhanced_code: self.enhanced,
            smtp_response: self.response,
            relay_host: self.relay_host,
            detail: self.detail,
            postponed: false,
        }
    }

    /// Whether the upstream is asking mailgate to slow down (not refusing this recipient):
    /// `421`, or `450`/`451`/`454` that say so (SES answers `454 Throttling failure`).
    pub fn is_throttling(&self) -> bool {
        let text = self
            .response
            .as_deref()
            .or(self.detail.as_deref())
            .unwrap_or("")
            .to_ascii_lowercase();
        match self.code {
            Some(421) => true,
            Some(450 | 451 | 454) => [
                "throttl",
                "rate limit",
                "ratelimit",
                "too many",
                "slow down",
                "exceeded",
            ]
            .iter()
            .any(|word| text.contains(word)),
            _ => false,
        }
    }
}

pub fn classify(result: Result<Response, RelayError>, host: &str) -> Reply {
    match result {
        Ok(response) => {
            let text = response.message().collect::<Vec<_>>().join(" ");
            Reply {
                status: RecipientStatus::Delivered,
                code: response.code().to_string().parse().ok(),
                enhanced: enhanced_code(&text),
                response: Some(text),
                relay_host: Some(host.to_string()),
                detail: None,
            }
        }
        // Decided before MAIL: the hop can never take this envelope.
        // RFC 6531 §3.2: bounced with 5.6.7 and no SMTP code, as the hop was never asked.
        Err(RelayError::NoSmtputf8(intl)) => Reply {
            status: RecipientStatus::Bounced,
            code: None,
            enhanced: Some("5.6.7".into()),
            response: None,
            relay_host: Some(host.to_string()),
            detail: Some(intl.refusal(host)),
        },
        Err(RelayError::Timeout(limit)) => Reply::transient(
            None,
            None,
            format!("timeout: the relay gave no complete answer within {limit:?}"),
            Some(host.to_string()),
        ),
        Err(err @ (RelayError::Connect(_) | RelayError::Setup(_) | RelayError::Busy(_))) => {
            Reply::transient(
                None,
                None,
                format!("connection: {err}"),
                Some(host.to_string()),
            )
        }
        Err(RelayError::Smtp(err)) => {
            let code = err.status().and_then(|c| c.to_string().parse::<i32>().ok());
            let text = std::error::Error::source(&err).map(|s| s.to_string());
            // Authentication replies are about mailgate's account at the relay, not about
            // the recipient: defer, so fixing the credentials delivers the mail.
            let relay_level = matches!(code, Some(454 | 530 | 534 | 535 | 538));
            let status = if err.is_permanent() && !relay_level {
                RecipientStatus::Bounced
            } else {
                RecipientStatus::Deferred
            };
            let kind = if relay_level {
                "relay authentication"
            } else if err.is_permanent() || err.is_transient() {
                "smtp"
            } else if err.is_timeout() {
                "timeout"
            } else if err.is_tls() {
                "tls"
            } else {
                "connection"
            };
            Reply {
                status,
                code,
                enhanced: text.as_deref().and_then(enhanced_code),
                response: if code.is_some() { text.clone() } else { None },
                relay_host: Some(host.to_string()),
                detail: Some(format!("{kind}: {err}")),
            }
        }
    }
}

/// A terminal outcome decided before any SMTP exchange.
pub fn terminal(job: &Job, status: RecipientStatus, detail: String) -> Outcome {
    Reply {
        status,
        code: None,
        enhanced: None,
        response: None,
        relay_host: None,
        detail: Some(detail),
    }
    .into_outcome(job, None)
}

/// Sandbox delivery: reported like live mail, never relayed.
/// `no_relay`: no relay is configured at all (else the message came with a test key).
pub fn sandbox(job: &Job, no_relay: bool) -> Outcome {
    Reply {
        status: RecipientStatus::Delivered,
        code: Some(250),
        enhanced: Some("2.0.0".into()),
        response: Some("sandbox: accepted and not relayed".into()),
        relay_host: Some("sandbox".into()),
        detail: Some(if !no_relay {
            "test key: sandbox delivery".into()
        } else {
            "no relay configured: sandbox delivery".into()
        }),
    }
    .into_outcome(job, None)
}

/// The RFC 3463 enhanced status code at the start of a reply text, like `5.1.1`.
pub fn enhanced_code(text: &str) -> Option<String> {
    let word = text.split_whitespace().next()?;
    let mut parts = word.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let ok = matches!(class, "2" | "4" | "5")
        && parts.next().is_none()
        && [subject, detail]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| word.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_replies_are_told_apart_from_other_deferrals() {
        let reply =
            |code, text: &str| Reply::transient(Some(code), Some(text.into()), "smtp".into(), None);
        assert!(reply(454, "Throttling failure: Maximum sending rate exceeded.").is_throttling());
        assert!(reply(421, "4.7.0 Try again later, closing connection").is_throttling());
        assert!(reply(451, "4.7.1 Too many messages, slow down").is_throttling());
        assert!(!reply(451, "4.7.1 Greylisted, try again later").is_throttling());
        assert!(!reply(450, "4.2.0 Mailbox busy").is_throttling());
        assert!(!reply(454, "4.7.0 Temporary authentication failure").is_throttling());
    }

    #[test]
    fn finds_enhanced_codes() {
        assert_eq!(
            enhanced_code("5.1.1 user unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(enhanced_code("2.0.0 Ok: queued"), Some("2.0.0".into()));
        assert_eq!(enhanced_code("Ok queued"), None);
        assert_eq!(enhanced_code("1.2.3 nope"), None);
    }
}
