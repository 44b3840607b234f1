//! What one attempt came to for one recipient, however it was made (an upstream relay,
//! a domain's MX, or no connection at all), and how it becomes the queue's `Outcome`.

use chrono::{DateTime, Utc};

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
    /// Structured facts of the attempt for its event's `data` (direct delivery: `route`).
    pub data: Option<serde_json::Value>,
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
            data: None,
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
            message_id: job.message_id,
            attempt: job.attempts,
            status: self.status,
            next_attempt_at,
            smtp_code: self.code,
            enhanced_code: self.enhanced,
            smtp_response: self.response,
            relay_host: self.relay_host,
            detail: self.detail,
            data: self.data,
            postponed: false,
        }
    }

    /// Whether the upstream is asking mailgate to slow down (not refusing this recipient):
    /// `421`, or `450`/`451`/`454` that say so (SES answers `454 Throttling failure`), or any
    /// 4xx with a mailbox provider's own words for "rate limited" or "deferred for
    /// reputation": Yahoo's `[TSS04]`, Microsoft's `4.7.650`, Gmail's `4.7.28`.
    pub fn is_throttling(&self) -> bool {
        let text = self
            .response
            .as_deref()
            .or(self.detail.as_deref())
            .unwrap_or("")
            .to_ascii_lowercase();
        const PROVIDERS: [&str; 7] = [
            "[tss04]",
            "[ts04]",
            "4.7.650",
            "4.7.28",
            "rate limited",
            "due to ip reputation",
            "temporarily deferred due to",
        ];
        match self.code {
            Some(421) => true,
            Some(400..=499) if PROVIDERS.iter().any(|word| text.contains(word)) => true,
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
        // The large mailbox providers' own words.
        assert!(reply(421, "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints").is_throttling());
        assert!(reply(451, "4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.").is_throttling());
        assert!(
            reply(
                452,
                "4.7.28 Our system has detected an unusual rate of unsolicited mail"
            )
            .is_throttling()
        );
        assert!(
            !reply(
                452,
                "4.2.2 The email account that you tried to reach is over quota"
            )
            .is_throttling()
        );
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
