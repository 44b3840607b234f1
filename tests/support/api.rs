//! The API's answers as a client reads them: typed, so a test says `email.status` and
//! `email.events_of("bounced")` rather than digging in JSON. Written here, from the API's
//! documented shapes (openapi/), so the tests check the wire format, not the server's types.
//! Free-form parts (`metadata`, `scan`, event `data`, webhook payloads) stay JSON.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Prints the answer as the API sent it (pretty with `{:#}`), for assertion messages.
macro_rules! display_as_json {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let json = if f.alternate() {
                    serde_json::to_string_pretty(self)
                } else {
                    serde_json::to_string(self)
                };
                f.write_str(&json.map_err(|_| fmt::Error)?)
            }
        }
    )*};
}

/// `202` to `POST /v1/emails`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Accepted {
    pub id: String,
    pub status: String,
    pub recipients: Vec<AcceptedRecipient>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AcceptedRecipient {
    pub email: String,
    pub status: String,
}

/// `GET /v1/emails/{id}`: the message, its recipients and its event timeline.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Email {
    pub id: String,
    pub status: String,
    pub from_addr: String,
    pub subject: String,
    pub message_id: String,
    pub tags: Vec<String>,
    pub metadata: Value,
    pub relay: Option<String>,
    pub sandbox: bool,
    pub send_at: Option<DateTime<Utc>>,
    /// The content scanners' verdicts, when scanning is on (else `null`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub scan: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub recipients: Vec<Recipient>,
    pub events: Vec<Event>,
    /// How often the tracking pixel was loaded; `null` until it first is.
    #[serde(default)]
    pub opens: Option<Opens>,
}

/// `opens` of an email: every counted load of its pixel, recorded as an event or not.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Opens {
    pub count: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Recipient {
    pub email: String,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub smtp_code: Option<i32>,
    pub enhanced_code: Option<String>,
    pub smtp_response: Option<String>,
    pub relay_host: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub recipient: String,
    pub at: DateTime<Utc>,
    pub attempt: Option<i32>,
    pub smtp_code: Option<i32>,
    pub enhanced_code: Option<String>,
    pub smtp_response: Option<String>,
    pub relay_host: Option<String>,
    pub detail: Option<String>,
    /// What the event carries beyond the SMTP reply (bounce DSN, complaint, open, click).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

impl Email {
    /// The recipient row of `address`.
    pub fn recipient(&self, address: &str) -> &Recipient {
        self.recipients
            .iter()
            .find(|r| r.email == address)
            .unwrap_or_else(|| panic!("no recipient {address}: {self:#}"))
    }

    /// Recipients as (address, status) pairs, in order.
    pub fn recipient_statuses(&self) -> Vec<(String, String)> {
        self.recipients
            .iter()
            .map(|r| (r.email.clone(), r.status.clone()))
            .collect()
    }

    /// The events as `type:recipient`, in order.
    pub fn event_types(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| format!("{}:{}", e.kind, e.recipient))
            .collect()
    }

    /// The events of one type, in order.
    pub fn events_of(&self, kind: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.kind == kind).collect()
    }
}

/// One page of a list: `data`, and the cursor of the next page when there is one.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
    #[serde(default)]
    pub has_more: bool,
}

/// A row of `GET /v1/emails`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EmailSummary {
    pub id: String,
    pub status: String,
    pub from_addr: String,
    pub subject: String,
    pub tags: Vec<String>,
    pub recipients: i64,
    pub send_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A webhook endpoint (`/v1/webhooks`); its secret is only in the answer to its creation.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub events: Value,
    pub format: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One event for one endpoint, with its attempts (`/v1/webhooks/{id}/deliveries`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WebhookDelivery {
    pub id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub response_status: Option<i32>,
    pub latency_ms: Option<i32>,
    pub error: Option<String>,
    /// The most recent attempts, oldest first.
    pub history: Vec<DeliveryAttempt>,
    /// The body sent, exactly.
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DeliveryAttempt {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub response_status: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// The answer to `POST /v1/webhooks/{id}/rotate-secret`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RotatedSecret {
    pub secret: String,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

display_as_json!(Accepted, Email, Recipient, Event, Webhook, WebhookDelivery);
