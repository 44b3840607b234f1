//! Where the per-key rate limiter plugs into SMTP submission.
//!
//! The session asks the limiter for one unit per message, after the message is read and
//! checked and before it is committed; a refusal is answered `451 4.7.1` and nothing is
//! stored. Mailgate's limiter (Redis GCRA with a local governor fallback) implements this
//! trait and is handed to `SmtpListener::set_limiter`; with none set, SMTP mail is not
//! rate-limited.

use std::{future::Future, pin::Pin, time::Duration};

use uuid::Uuid;

/// Whose message is asking.
#[derive(Debug, Clone, Copy)]
pub struct Submitter {
    pub project_id: Uuid,
    /// `None` for mail from a trusted network without AUTH.
    pub api_key_id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Over the limit; a unit is free again after this long.
    Limited {
        retry_after: Duration,
    },
}

pub trait SubmissionLimiter: Send + Sync + 'static {
    /// Takes one unit for one message of `who`.
    fn acquire<'a>(&'a self, who: Submitter)
    -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;
}
