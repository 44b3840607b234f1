//! How a delivery is shaped and signed for its endpoint's `format`. Every delivery is queued
//! in mailgate's own body (see migration 0005); a format rewrites it at send time, so an
//! endpoint's format can change and a replay is sent the way the endpoint wants it now.
//!
//! - `standard`: the body as queued, with Standard Webhooks headers (`webhook-id`,
//!   `webhook-timestamp`, `webhook-signature`).
//! - `resend` (`resend.rs`): Resend's event body, with the same signature under Svix's header
//!   names (`svix-id`, `svix-timestamp`, `svix-signature`), as Resend sends through Svix.

mod resend;

use super::signing::{WebhookSecret, signature_header};

/// What one attempt sends: the body and the headers that sign it.
pub struct Outgoing {
    pub body: String,
    pub headers: [(&'static str, String); 3],
}

/// The body and signature headers of one attempt in `format`; `id` is the delivery's (the
/// same on every attempt), `timestamp` this attempt's. `Err` says why the queued body cannot
/// be shaped (a body mailgate did not queue).
pub fn render(
    format: &str,
    body: &str,
    id: &str,
    timestamp: i64,
    secrets: &[&WebhookSecret],
) -> Result<Outgoing, String> {
    let (body, names) = match format {
        "resend" => (
            resend::body(body)?,
            ["svix-id", "svix-timestamp", "svix-signature"],
        ),
        _ => (
            body.to_string(),
            ["webhook-id", "webhook-timestamp", "webhook-signature"],
        ),
    };
    let signature = signature_header(secrets, id, timestamp, body.as_bytes());
    Ok(Outgoing {
        headers: [
            (names[0], id.to_string()),
            (names[1], timestamp.to_string()),
            (names[2], signature),
        ],
        body,
    })
}
