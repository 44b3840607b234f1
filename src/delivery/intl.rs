//! Internationalized mail on the way out (RFC 6531, RFC 6532): whether a message must, may or
//! cannot go with `SMTPUTF8` to a hop, decided from the envelope and the header section.
//!
//! - Domains never need it: the envelope carries them in A-labels
//!   ([`EmailAddress::to_envelope`](crate::domain::EmailAddress::to_envelope)).
//! - A UTF-8 local part does, as no ASCII form of it exists. A hop that does not offer
//!   `SMTPUTF8` can never take it, so the recipient bounces at once with `5.6.7`
//!   (RFC 6531 §3.2), instead of being deferred until it is too old.
//! - UTF-8 in the header section alone (RFC 6532 headers, e.g. `To: 用户@例子.中国` on a copy
//!   for another recipient) is sent with `SMTPUTF8` when the hop offers it, and otherwise as
//!   8-bit data as before (no RFC 6856/6857 downgrade is attempted).
//!
//! Kept apart from the relay pool so that any client that speaks SMTP for mailgate can ask.

use crate::domain::EnvelopeAddress;

/// What a message's envelope and headers ask of the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Intl {
    /// The envelope sender's local part is UTF-8.
    pub sender: bool,
    /// The recipient's local part is UTF-8.
    pub recipient: bool,
    /// The header section holds UTF-8 (RFC 6532).
    pub headers: bool,
}

/// Whether to send `MAIL FROM` with `SMTPUTF8` at a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Smtputf8 {
    Use,
    No,
    /// The envelope needs it and the hop does not offer it: the message cannot go there.
    Impossible,
}

impl Intl {
    pub fn of(sender: &EnvelopeAddress, recipient: &EnvelopeAddress, mime: &[u8]) -> Self {
        Self {
            sender: sender.needs_smtputf8,
            recipient: recipient.needs_smtputf8,
            headers: !header_section(mime).is_ascii(),
        }
    }

    /// The envelope cannot be written without `SMTPUTF8`.
    pub fn required(&self) -> bool {
        self.sender || self.recipient
    }

    /// What to do at a hop that does (or does not) offer `SMTPUTF8`.
    pub fn at_hop(&self, offered: bool) -> Smtputf8 {
        match (offered, self.required()) {
            (false, true) => Smtputf8::Impossible,
            (true, true) => Smtputf8::Use,
            (true, false) if self.headers => Smtputf8::Use,
            _ => Smtputf8::No,
        }
    }

    /// Why a hop without `SMTPUTF8` cannot take the message (the detail of its `5.6.7`).
    pub fn refusal(&self, host: &str) -> String {
        let whose = if self.recipient {
            "the recipient's address"
        } else {
            "the sender's address"
        };
        format!(
            "5.6.7 {whose} has a UTF-8 local part and needs SMTPUTF8, which {host} does not offer (RFC 6531)"
        )
    }
}

/// The bytes before the first empty line (the whole message when it has no body).
fn header_section(mime: &[u8]) -> &[u8] {
    mime.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(mime, |i| &mime[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EmailAddress;

    fn env(a: &str) -> EnvelopeAddress {
        EmailAddress::parse(a).unwrap().to_envelope()
    }

    #[test]
    fn only_a_utf8_local_part_requires_smtputf8() {
        let ascii = b"From: a@example.com\r\n\r\nbody caf\xc3\xa9";
        let sender = env("a@example.com");
        let ada = Intl::of(&sender, &env("ada@bücher.example"), ascii);
        assert_eq!(ada, Intl::default());
        assert_eq!(ada.at_hop(false), Smtputf8::No);
        assert_eq!(ada.at_hop(true), Smtputf8::No);

        let jose = Intl::of(&sender, &env("josé@bücher.example"), ascii);
        assert!(jose.required());
        assert_eq!(jose.at_hop(true), Smtputf8::Use);
        assert_eq!(jose.at_hop(false), Smtputf8::Impossible);

        let utf8_headers = "To: 用户@例子.中国\r\n\r\nx".as_bytes();
        let copy = Intl::of(&sender, &env("ada@example.com"), utf8_headers);
        assert!(copy.headers && !copy.required());
        assert_eq!(copy.at_hop(true), Smtputf8::Use);
        assert_eq!(copy.at_hop(false), Smtputf8::No);
    }
}
