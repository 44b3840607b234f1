//! Turns what the upstream said into a recipient status: 2xx delivered, 5xx bounced,
//! 4xx and every connection, TLS or timeout trouble deferred.

use lettre::transport::smtp::response::Response;

use super::relay::RelayError;
pub use super::reply::{Reply, enhanced_code};
use crate::{
    domain::RecipientStatus,
    queue::mail::{Job, Outcome},
};

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
                data: None,
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
            data: None,
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
                data: None,
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
        data: None,
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
        data: None,
    }
    .into_outcome(job, None)
}
