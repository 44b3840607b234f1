//! Recipients of one message at one domain, gathered into one SMTP transaction. The queue
//! hands out recipients one by one, and a claimed batch runs them at once: the first one of
//! a (message, domain, sender) becomes the leader, waits [`GATHER`] for the others to join,
//! and delivers for all of them; each member gets its own recipient's reply.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tokio::sync::oneshot;
use uuid::Uuid;

use super::shaping::Delivery;

/// How long a leader waits for the rest of its message's recipients at the domain. They
/// were claimed together and start within microseconds of each other; this is slack.
pub(super) const GATHER: Duration = Duration::from_millis(20);
/// Most recipients in one transaction (RFC 5321 §4.5.3.1.8: servers must take 100).
pub const MAX_RECIPIENTS: usize = 100;

/// (message, recipient domain, envelope sender, whether the recipient's local part is UTF-8):
/// one transaction has one MAIL FROM, with or without SMTPUTF8.
pub(super) type Key = (Uuid, String, String, bool);

pub(super) struct Member {
    pub(super) rcpt: String,
    pub(super) reply: oneshot::Sender<Delivery>,
}

#[derive(Default)]
pub(super) struct Batches {
    open: Mutex<HashMap<Key, Vec<Member>>>,
}

/// What joining a batch made of this recipient.
pub(super) enum Joined<'a> {
    /// Deliver the batch after [`GATHER`], through [`Lead::take`].
    Leader(Lead<'a>),
    /// Another recipient's delivery will answer.
    Member,
    /// The batch is full: deliver alone.
    Alone,
}

impl Batches {
    pub(super) fn join(&self, key: Key, member: Member) -> (Joined<'_>, Option<Member>) {
        let mut open = self.open.lock().expect("not poisoned");
        match open.get_mut(&key) {
            Some(members) if members.len() < MAX_RECIPIENTS => {
                members.push(member);
                (Joined::Member, None)
            }
            Some(_) => (Joined::Alone, Some(member)),
            None => {
                open.insert(key.clone(), vec![member]);
                (
                    Joined::Leader(Lead {
                        batches: self,
                        key,
                        taken: false,
                    }),
                    None,
                )
            }
        }
    }
}

/// The leader's hold on its batch: [`take`](Lead::take) closes it; dropped untaken (the
/// attempt was cancelled), it closes too, so no later recipient waits on a dead leader.
pub(super) struct Lead<'a> {
    batches: &'a Batches,
    key: Key,
    taken: bool,
}

impl Lead<'_> {
    pub(super) fn take(mut self) -> Vec<Member> {
        self.taken = true;
        self.batches
            .open
            .lock()
            .expect("not poisoned")
            .remove(&self.key)
            .unwrap_or_default()
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if !self.taken {
            self.batches
                .open
                .lock()
                .expect("not poisoned")
                .remove(&self.key);
        }
    }
}
