//! The lifecycle vocabulary, shared by the queue, the API and events: each recipient's
//! status, and the message status that summarises them.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientStatus {
    Queued,
    Scheduled,
    Sending,
    Delivered,
    Deferred,
    Bounced,
    Failed,
    Suppressed,
    Cancelled,
    /// Delivered, then reported as spam by the recipient (an ARF feedback report).
    Complained,
    /// Stopped by the content policy at accept, until released or discarded.
    Held,
}

impl RecipientStatus {
    pub const ALL: [RecipientStatus; 11] = [
        Self::Queued,
        Self::Scheduled,
        Self::Sending,
        Self::Delivered,
        Self::Deferred,
        Self::Bounced,
        Self::Failed,
        Self::Suppressed,
        Self::Cancelled,
        Self::Complained,
        Self::Held,
    ];

    /// Waiting for a relay or in its hands: what the queue depth counts.
    pub const IN_FLIGHT: [RecipientStatus; 4] =
        [Self::Queued, Self::Scheduled, Self::Sending, Self::Deferred];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Scheduled => "scheduled",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Deferred => "deferred",
            Self::Bounced => "bounced",
            Self::Failed => "failed",
            Self::Suppressed => "suppressed",
            Self::Cancelled => "cancelled",
            Self::Complained => "complained",
            Self::Held => "held",
        }
    }

    /// No further delivery attempt: the relay's answer is final. A delivered recipient may
    /// still turn `bounced` or `complained` when a report comes back by mail.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Delivered
                | Self::Bounced
                | Self::Failed
                | Self::Suppressed
                | Self::Cancelled
                | Self::Complained
        )
    }
}

/// A message's summary status, from its recipients' statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = EmailStatus)]
pub enum MessageStatus {
    Queued,
    Scheduled,
    Sending,
    Deferred,
    Delivered,
    /// Some recipients delivered, the others bounced, failed, suppressed or cancelled.
    PartiallyDelivered,
    Bounced,
    Failed,
    Suppressed,
    Cancelled,
    /// Every recipient reported the message as spam.
    Complained,
    /// Stopped by the content policy, waiting to be released or discarded.
    Held,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 12] = [
        Self::Queued,
        Self::Scheduled,
        Self::Sending,
        Self::Deferred,
        Self::Delivered,
        Self::PartiallyDelivered,
        Self::Bounced,
        Self::Failed,
        Self::Suppressed,
        Self::Cancelled,
        Self::Complained,
        Self::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Scheduled => "scheduled",
            Self::Sending => "sending",
            Self::Deferred => "deferred",
            Self::Delivered => "delivered",
            Self::PartiallyDelivered => "partially_delivered",
            Self::Bounced => "bounced",
            Self::Failed => "failed",
            Self::Suppressed => "suppressed",
            Self::Cancelled => "cancelled",
            Self::Complained => "complained",
            Self::Held => "held",
        }
    }
}

/// Every recipient in one status: the message is in it too.
impl From<RecipientStatus> for MessageStatus {
    fn from(status: RecipientStatus) -> Self {
        match status {
            RecipientStatus::Queued => Self::Queued,
            RecipientStatus::Scheduled => Self::Scheduled,
            RecipientStatus::Sending => Self::Sending,
            RecipientStatus::Delivered => Self::Delivered,
            RecipientStatus::Deferred => Self::Deferred,
            RecipientStatus::Bounced => Self::Bounced,
            RecipientStatus::Failed => Self::Failed,
            RecipientStatus::Suppressed => Self::Suppressed,
            RecipientStatus::Cancelled => Self::Cancelled,
            RecipientStatus::Complained => Self::Complained,
            RecipientStatus::Held => Self::Held,
        }
    }
}

/// A message's status from its recipients'. Mirrors the SQL function
/// `mailgate_message_status` (migrations/0001_init.sql), which keeps the stored status; a
/// test holds the two to agreement. In-flight states win, in this order (held last: it waits
/// for a person); then a status all
/// recipients share; then `delivered` if every recipient was delivered (a complaint is about
/// delivered mail), `partially_delivered` if any was, else `failed`.
/// No recipients (which no stored message has) reads as `queued`.
pub fn summarise(statuses: &[RecipientStatus]) -> MessageStatus {
    use RecipientStatus::*;
    for in_flight in [Sending, Deferred, Queued, Scheduled, Held] {
        if statuses.contains(&in_flight) {
            return in_flight.into();
        }
    }
    match statuses.first() {
        None => MessageStatus::Queued,
        Some(&first) if statuses.iter().all(|&s| s == first) => first.into(),
        Some(_) if statuses.iter().all(|s| matches!(s, Delivered | Complained)) => {
            MessageStatus::Delivered
        }
        Some(_) if statuses.iter().any(|s| matches!(s, Delivered | Complained)) => {
            MessageStatus::PartiallyDelivered
        }
        Some(_) => MessageStatus::Failed,
    }
}

/// A status word that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct UnknownStatus(pub String);

/// The status among `all` whose word is `s`.
fn parse_word<T: Copy>(
    all: &[T],
    word: fn(T) -> &'static str,
    s: &str,
) -> Result<T, UnknownStatus> {
    all.iter()
        .copied()
        .find(|status| word(*status) == s)
        .ok_or_else(|| UnknownStatus(s.to_string()))
}

impl FromStr for RecipientStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_word(&Self::ALL, Self::as_str, s)
    }
}

impl FromStr for MessageStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_word(&Self::ALL, Self::as_str, s)
    }
}

impl fmt::Display for RecipientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Statuses as stored (text) to the enum; a word that is not a status is skipped. The
/// database only holds statuses, so nothing is skipped in practice.
pub fn parse_all<'a>(statuses: impl IntoIterator<Item = &'a str>) -> Vec<RecipientStatus> {
    statuses
        .into_iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{MessageStatus as M, RecipientStatus as R, *};

    #[test]
    fn summarises_recipients() {
        assert_eq!(summarise(&[R::Delivered, R::Delivered]), M::Delivered);
        assert_eq!(summarise(&[R::Delivered, R::Deferred]), M::Deferred);
        assert_eq!(
            summarise(&[R::Delivered, R::Bounced]),
            M::PartiallyDelivered
        );
        assert_eq!(summarise(&[R::Bounced, R::Suppressed]), M::Failed);
        assert_eq!(summarise(&[R::Delivered, R::Complained]), M::Delivered);
        assert_eq!(summarise(&[R::Complained]), M::Complained);
        assert_eq!(
            summarise(&[R::Complained, R::Bounced]),
            M::PartiallyDelivered
        );
        assert_eq!(summarise(&[]), M::Queued);
    }

    #[test]
    fn words_round_trip() {
        for s in R::ALL {
            assert_eq!(s.as_str().parse::<R>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(M::from(s).as_str(), s.as_str());
        }
        for s in M::ALL {
            assert_eq!(s.as_str().parse::<M>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("partially_delivered".parse::<R>().is_err());
        assert!("sent".parse::<M>().is_err());
    }
}
