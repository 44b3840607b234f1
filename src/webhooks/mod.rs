//! Webhooks: signed HTTP callbacks for every recipient transition.
//!
//! This module owns the sending side: `signing` (Standard Webhooks signatures and
//! `whsec_…` secrets), `formats` (each endpoint format's body and signature headers), `guard` (the SSRF check on targets, at set-up and on every request),
//! `sender` (one signed request per attempt, with its timeouts), `queue` (the delivery queue
//! as the queue runner works it: its own slots, claim and lease) and the retry `schedule`. Endpoints and the delivery queue live in `store::webhooks`; deliveries for
//! email events are enqueued by a trigger on `events` (migration 0005), so every place that
//! records an event also queues its webhooks, in the same transaction.

pub mod formats;
pub mod guard;
pub mod queue;
pub mod schedule;
pub mod sender;
pub mod signing;

pub use queue::WebhookQueue;
pub use sender::{Sender, install_tls_provider};
pub use signing::WebhookSecret;

/// The webhook queue's runner: leased deliveries, sent by a `Sender`.
pub type WebhookRunner = crate::queue::Runner<WebhookQueue, Sender>;

// The one list of email event types (filters, the spec and the console read it): one per
// recipient transition (`scheduled` is announced as queued), then what came back later:
// reports by mail (`bounced` again, with `async`, `complained`, `delayed`), opens and
// clicks, mail received at an inbound domain, mail the content policy holds, and one-click
// unsubscribes.
/// An event type an endpoint can subscribe to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum EventType {
    #[serde(rename = "email.queued")]
    Queued,
    #[serde(rename = "email.delivered")]
    Delivered,
    #[serde(rename = "email.deferred")]
    Deferred,
    #[serde(rename = "email.bounced")]
    Bounced,
    #[serde(rename = "email.failed")]
    Failed,
    #[serde(rename = "email.suppressed")]
    Suppressed,
    #[serde(rename = "email.cancelled")]
    Cancelled,
    #[serde(rename = "email.complained")]
    Complained,
    #[serde(rename = "email.delayed")]
    Delayed,
    #[serde(rename = "email.opened")]
    Opened,
    #[serde(rename = "email.clicked")]
    Clicked,
    #[serde(rename = "email.received")]
    Received,
    #[serde(rename = "email.held")]
    Held,
    #[serde(rename = "email.unsubscribed")]
    Unsubscribed,
    /// A sending domain's required records are all published (again).
    #[serde(rename = "domain.verified")]
    DomainVerified,
    /// A verified domain lost a record: `temporary_failure`, still signed and sent from.
    #[serde(rename = "domain.degraded")]
    DomainDegraded,
    /// A domain stayed pending, or lacked a record, too long: `failed`.
    #[serde(rename = "domain.failed")]
    DomainFailed,
}

impl EventType {
    /// Every type, in the order endpoints and pages list them.
    pub const ALL: [EventType; 17] = [
        EventType::Queued,
        EventType::Delivered,
        EventType::Deferred,
        EventType::Bounced,
        EventType::Failed,
        EventType::Suppressed,
        EventType::Cancelled,
        EventType::Complained,
        EventType::Delayed,
        EventType::Opened,
        EventType::Clicked,
        EventType::Received,
        EventType::Held,
        EventType::Unsubscribed,
        EventType::DomainVerified,
        EventType::DomainDegraded,
        EventType::DomainFailed,
    ];

    /// The name as webhooks and filters spell it (`email.delivered`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Queued => "email.queued",
            EventType::Delivered => "email.delivered",
            EventType::Deferred => "email.deferred",
            EventType::Bounced => "email.bounced",
            EventType::Failed => "email.failed",
            EventType::Suppressed => "email.suppressed",
            EventType::Cancelled => "email.cancelled",
            EventType::Complained => "email.complained",
            EventType::Delayed => "email.delayed",
            EventType::Opened => "email.opened",
            EventType::Clicked => "email.clicked",
            EventType::Received => "email.received",
            EventType::Held => "email.held",
            EventType::Unsubscribed => "email.unsubscribed",
            EventType::DomainVerified => "domain.verified",
            EventType::DomainDegraded => "domain.degraded",
            EventType::DomainFailed => "domain.failed",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Every type's name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        EventType::ALL.into_iter().map(EventType::as_str)
    }
}

/// Sent on request to check an endpoint; not subject to the endpoint's event filter.
pub const TEST_EVENT: &str = "webhook.test";
