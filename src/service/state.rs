//! What every operation of the application layer works with: the database, the config,
//! the relays, the wake-ups, the caches, the gate and the submission core. Built once by
//! `app`; cheap to clone.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use sqlx::PgPool;

use super::gate::Gate;
use crate::{
    config::Config,
    delivery::{DkimKeys, Relays, dns::Dns},
    queue::wake::Wakers,
    submission::SubmissionCore,
    templates::TemplateCache,
    tokens::TokenKey,
};

/// Shared by every transport's handlers; cheap to clone. The SMTP listener takes only the
/// parts it needs.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub relays: Arc<Relays>,
    pub waker: Wakers,
    pub templates: TemplateCache,
    /// Who is calling, the failed-auth throttle and the rate-limit charge.
    pub gate: Gate,
    /// Where every way in submits mail (`submission`).
    pub submissions: SubmissionCore,
    /// Signs and checks VERP return paths and tracking links.
    pub tokens: TokenKey,
    /// Signs relayed mail: the configured keys and the sending domains' (`service::domains`).
    pub dkim: Arc<DkimKeys>,
    /// The sending domains' return paths in use, for delivery's envelope senders.
    pub return_paths: crate::delivery::SendingReturnPaths,
    /// Checks sending domains' records: `[dns]`, without a cache (`None`: it could not be
    /// built, and checks find DNS unanswering).
    pub dns: Option<Arc<Dns>>,
    /// Set when shutdown begins: `/readyz` answers 503 during `http.drain_secs`.
    pub drain: Drain,
}

/// Whether this process is draining: shutting down, with `/readyz` saying so while requests
/// are still served, so a load balancer stops routing here before the listeners close.
#[derive(Clone, Default)]
pub struct Drain(Arc<AtomicBool>);

impl Drain {
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
