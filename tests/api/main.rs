//! Integration tests through HTTP against a real mailgate, Postgres and SMTP server.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod batch;
mod body_retention;
mod charging;
mod dane;
mod delivery;
mod direct;
mod dkim;
mod docs;
mod domains;
mod grants;
mod group_commit;
mod idempotency;
mod instances;
mod intl;
mod leases;
mod listing;
mod logging;
mod metrics;
mod operations;
mod partitions;
mod provider_routes;
mod ratelimit;
mod redaction;
mod relays;
mod scheduling;
mod scopes;
mod send;
mod shaping;
mod sockets;
mod status;
mod suppressions;
mod templates;
mod tls_policy;
mod tlsrpt;
mod unsubscribe;
mod validation;
mod webhooks;
