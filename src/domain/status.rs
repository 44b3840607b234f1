//! The per-recipient lifecycle vocabulary, shared by the queue, the API and events.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

impl RecipientStatus {
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
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Bounced | Self::Failed | Self::Suppressed | Self::Cancelled
        )
    }
}

/// A message's status from its recipients' (mirrors SQL `mailgate_message_status`).
pub fn summarise<'a>(statuses: impl IntoIterator<Item = &'a str>) -> &'a str {
    let all: Vec<&str> = statuses.into_iter().collect();
    for in_flight in ["sending", "deferred", "queued", "scheduled"] {
        if all.contains(&in_flight) {
            return in_flight;
        }
    }
    match all.first() {
        None => "queued",
        Some(first) if all.iter().all(|s| s == first) => first,
        Some(_) if all.contains(&"delivered") => "partially_delivered",
        Some(_) => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::summarise;

    #[test]
    fn summarises_recipients() {
        assert_eq!(summarise(["delivered", "delivered"]), "delivered");
        assert_eq!(summarise(["delivered", "deferred"]), "deferred");
        assert_eq!(summarise(["delivered", "bounced"]), "partially_delivered");
        assert_eq!(summarise(["bounced", "suppressed"]), "failed");
    }
}
