//! Where the per-key rate limiter plugs into SMTP submission.
//!
//! The session asks the limiter for one unit per message, after the message is read and
//! checked and before it is committed; a refusal is answered `451 4.7.1` and nothing is
//! stored. The application's gate (`service::Gate`: Redis GCRA with a local governor
//! fallback) implements this trait and is handed to `SmtpListener::set_limiter`; with none set, SMTP mail is not
//! rate-limited.

use std::{future::Future, pin::Pin, time::Duration};

use uuid::Uuid;

/// The client a message comes from, as the limiter sees it: its project and key.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub project_id: Uuid,
    /// `None` for mail from a trusted network without AUTH.
    pub api_key_id: Option<Uuid>,
    /// The key's own send limits (defaults for trusted-network mail).
    pub limits: crate::domain::api_key::KeyLimits,
}

/// Whether a message may go on (`ratelimit::Decision` is the limiter's fuller answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Over the limit; a unit is free again after this long.
    Limited {
        retry_after: Duration,
    },
}

/// The application's gate: an SMTP message is one `send` unit of its key (or, for
/// trusted-network mail, of its project), charged in the same buckets as HTTP sends.
impl SubmissionLimiter for crate::service::Gate {
    fn acquire<'a>(&'a self, who: Client) -> Pin<Box<dyn Future<Output = Admission> + Send + 'a>> {
        use crate::{
            ratelimit::{Class, Refusal},
            service::ServiceError,
        };
        Box::pin(async move {
            let subject = who.api_key_id.unwrap_or(who.project_id);
            let wait = |secs: Option<u64>| Admission::Limited {
                retry_after: Duration::from_secs(secs.unwrap_or(1).max(1)),
            };
            match self.charge_as(subject, &who.limits, Class::Send, 1).await {
                Ok(_) => Admission::Allowed,
                Err(ServiceError::Refused(Refusal::RateLimited(d))) => wait(d.retry_after_secs()),
                Err(ServiceError::Refused(Refusal::QuotaExceeded { decision, .. })) => {
                    wait(decision.retry_after_secs())
                }
                // Fail-closed without Redis, or a burst below one: a temporary 451 either way.
                Err(_) => wait(None),
            }
        })
    }
}

pub trait SubmissionLimiter: Send + Sync + 'static {
    /// Takes one unit for one message of `who`.
    fn acquire<'a>(&'a self, who: Client) -> Pin<Box<dyn Future<Output = Admission> + Send + 'a>>;
}
