//! How a webhook endpoint wants its events: mailgate's own signed body (Standard Webhooks),
//! or the shape of a provider the receiver already speaks.

use serde::{Deserialize, Serialize};

use super::stored::stored_as_text;

/// How an endpoint's deliveries are shaped and signed: `standard` (mailgate's body,
/// `webhook-*` Standard Webhooks headers), `resend` (Resend's event body, `svix-*` headers,
/// the same signature), `postmark` (Postmark's records) or `sendgrid` (SendGrid's event array, signed with the project's ECDSA
/// key: see `GET /v1/webhooks/signing-key`), for a handler written for that provider.
#[derive(Debug, Serialize, Deserialize, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    Standard,
    Resend,
    /// One Postmark `RecordType` object per POST, unsigned: authenticate with Basic
    /// credentials in the URL (`https://user:pass@host/…`), allowed for this format only.
    Postmark,
    Sendgrid,
    /// Mailgun's `signature` + `event-data` body, signed with the endpoint's secret.
    Mailgun,
}

impl WebhookFormat {
    pub const ALL: [WebhookFormat; 5] = [
        WebhookFormat::Standard,
        WebhookFormat::Resend,
        WebhookFormat::Postmark,
        WebhookFormat::Sendgrid,
        WebhookFormat::Mailgun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Standard => "standard",
            WebhookFormat::Resend => "resend",
            WebhookFormat::Postmark => "postmark",
            WebhookFormat::Sendgrid => "sendgrid",
            WebhookFormat::Mailgun => "mailgun",
        }
    }

    pub fn parse(raw: &str) -> Option<WebhookFormat> {
        WebhookFormat::ALL.into_iter().find(|f| f.as_str() == raw)
    }
}

impl std::fmt::Display for WebhookFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

stored_as_text!(WebhookFormat);
