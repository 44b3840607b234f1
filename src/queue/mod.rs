//! Leased work in Postgres: the runner that works any queue (`runner`), the lease store every
//! queue table shares (`lease`), the wake-ups that start a runner (`wake`), and the mail
//! queue itself (`mail`), one row per recipient in `recipients`. The webhook and inbound
//! queues live with their handlers (`webhooks::queue`, `inbound::queue`).
//!
//! Runners `claim` due rows with `FOR UPDATE SKIP LOCKED` and a lease (no transaction is held
//! across SMTP), then `complete` a batch of outcomes in one transaction. A lease left behind by
//! a dead process is put back by `reclaim_expired`: when the lease runs out, or at once when
//! the process stopped beating as a lease holder (`holder`). `(id, attempts, lease_owner)` fences every
//! write, so a runner whose lease was taken over cannot overwrite the newer attempt.

pub mod holder;
pub mod lease;
pub mod mail;
pub mod runner;
pub mod wake;

pub use lease::{LeaseId, LeaseTable};
pub use runner::{Handler, LeasedQueue, Runner};
