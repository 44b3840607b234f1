//! How a delivery is shaped and signed for its endpoint's `format`. Every delivery is queued
//! in mailgate's own body (see migration 0005); a format rewrites it at send time, so an
//! endpoint's format can change and a replay is sent the way the endpoint wants it now.
//!
//! - `standard`: the body as queued, with Standard Webhooks headers (`webhook-id`,
//!   `webhook-timestamp`, `webhook-signature`).
//! - `resend` (`resend.rs`): Resend's event body, with the same signature under Svix's header
//!   names (`svix-id`, `svix-timestamp`, `svix-signature`), as Resend sends through Svix.
//! - `postmark` (`postmark.rs`): one Postmark `RecordType` object per POST, unsigned (Postmark
//!   signs nothing: its receivers check Basic credentials in the URL, which the sender sends);
//!   events Postmark has no record for are not sent.
//! - `sendgrid` (`sendgrid.rs`): SendGrid's event array, signed with the project's ECDSA
//!   P-256 key as SendGrid's Signed Event Webhook is.
//! - `mailgun` (`mailgun.rs`): Mailgun's `signature` + `event-data` body, signed in the body
//!   with the endpoint's newest secret as Mailgun's signing key.

mod mailgun;
mod postmark;
mod resend;
pub mod sendgrid;

use super::signing::{WebhookSecret, signature_header};
use crate::domain::WebhookFormat;

/// What one attempt sends: the body and the headers that sign it. `None` from `render`: the
/// format has nothing for this event, and nothing is sent.
pub struct Outgoing {
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

/// The body and signature headers of one attempt in `format`; `id` is the delivery's (the
/// same on every attempt), `timestamp` this attempt's. `Err` says why the queued body cannot
/// be shaped (a body mailgate did not queue, a `sendgrid` endpoint without its project's key).
/// `signing_key` is the project's ECDSA key (PKCS#8), for `sendgrid`.
pub fn render(
    format: WebhookFormat,
    body: &str,
    id: &str,
    timestamp: i64,
    secrets: &[&WebhookSecret],
    signing_key: Option<&[u8]>,
) -> Result<Option<Outgoing>, String> {
    // Sending domains' events are about no message: the email-shaped formats have nothing
    // for them; Resend's has `domain.*` events, with the domain as `data`.
    if is_domain_event(body) {
        match format {
            WebhookFormat::Standard | WebhookFormat::Resend => {}
            _ => return Ok(None),
        }
    }
    let (body, names) = match format {
        WebhookFormat::Postmark => {
            return Ok(postmark::body(body, id)?.map(|body| Outgoing {
                body,
                headers: Vec::new(),
            }));
        }
        WebhookFormat::Mailgun => {
            let key = secrets.first().ok_or("the endpoint has no secret")?;
            return Ok(
                mailgun::body(body, id, timestamp, key.expose())?.map(|body| Outgoing {
                    body,
                    headers: Vec::new(),
                }),
            );
        }
        WebhookFormat::Sendgrid => {
            let body = sendgrid::body(body, id)?;
            let key = signing_key.ok_or("the project has no event signing key")?;
            let signature = sendgrid::sign(key, timestamp, &body)?;
            return Ok(Some(Outgoing {
                headers: vec![
                    ("x-twilio-email-event-webhook-signature", signature),
                    (
                        "x-twilio-email-event-webhook-timestamp",
                        timestamp.to_string(),
                    ),
                ],
                body,
            }));
        }
        WebhookFormat::Resend if is_domain_event(body) => (
            resend::domain_body(body)?,
            ["svix-id", "svix-timestamp", "svix-signature"],
        ),
        WebhookFormat::Resend => (
            resend::body(body)?,
            ["svix-id", "svix-timestamp", "svix-signature"],
        ),
        WebhookFormat::Standard => (
            body.to_string(),
            ["webhook-id", "webhook-timestamp", "webhook-signature"],
        ),
    };
    let signature = signature_header(secrets, id, timestamp, body.as_bytes());
    Ok(Some(Outgoing {
        headers: vec![
            (names[0], id.to_string()),
            (names[1], timestamp.to_string()),
            (names[2], signature),
        ],
        body,
    }))
}

/// Whether a queued body is a `domain.*` event.
fn is_domain_event(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["type"].as_str().map(|t| t.starts_with("domain.")))
        .unwrap_or(false)
}
