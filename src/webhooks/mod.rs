//! Webhooks: signed HTTP callbacks for every recipient transition.
//!
//! This module owns the sending side: `signing` (Standard Webhooks signatures and
//! `whsec_…` secrets), `guard` (the SSRF check on targets, at set-up and on every request),
//! `sender` (one signed request per attempt, with its timeouts), `queue` (the delivery queue
//! as the queue runner works it: its own slots, claim and lease) and the retry `schedule`. Endpoints and the delivery queue live in `store::webhooks`; deliveries for
//! email events are enqueued by a trigger on `events` (migration 0005), so every place that
//! records an event also queues its webhooks, in the same transaction.

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

/// Email event types: one per recipient transition (`scheduled` is announced as queued),
/// then what came back later: reports by mail (`bounced` again, with `async`, `complained`,
/// `delayed`), opens and clicks, mail received at an inbound domain, and mail the content
/// policy holds.
pub const EMAIL_EVENTS: [&str; 13] = [
    "email.queued",
    "email.delivered",
    "email.deferred",
    "email.bounced",
    "email.failed",
    "email.suppressed",
    "email.cancelled",
    "email.complained",
    "email.delayed",
    "email.opened",
    "email.clicked",
    "email.received",
    "email.held",
];

/// Sent on request to check an endpoint; not subject to the endpoint's event filter.
pub const TEST_EVENT: &str = "webhook.test";
