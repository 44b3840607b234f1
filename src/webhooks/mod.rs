//! Webhooks: signed HTTP callbacks for every recipient transition.
//!
//! This module owns the sending side: `signing` (Standard Webhooks signatures and
//! `whsec_…` secrets), `guard` (the SSRF check on targets, at set-up and on every request),
//! `worker` (the delivery worker: its own pool, claim and lease, timeouts) and the retry
//! `schedule`. Endpoints and the delivery queue live in `store::webhooks`; deliveries for
//! email events are enqueued by a trigger on `events` (migration 0005), so every place that
//! records an event also queues its webhooks, in the same transaction.

pub mod guard;
pub mod schedule;
pub mod signing;
pub mod worker;

pub use signing::WebhookSecret;
pub use worker::Worker;

/// Email event types, one per recipient transition (`scheduled` is announced as queued).
pub const EMAIL_EVENTS: [&str; 7] = [
    "email.queued",
    "email.delivered",
    "email.deferred",
    "email.bounced",
    "email.failed",
    "email.suppressed",
    "email.cancelled",
];

/// Sent on request to check an endpoint; not subject to the endpoint's event filter.
pub const TEST_EVENT: &str = "webhook.test";
