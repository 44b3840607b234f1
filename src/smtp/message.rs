//! Submitted MIME, read and minimally edited: the bytes an app gave are the bytes relayed.
//!
//! mail-parser reads the header section. Only three edits are made, all in the headers:
//! `X-Mailgate-*` lines are taken out (they become tags, metadata, tracking and unsubscribe
//! choices), and `Message-ID` and `Date` lines are prepended when the message has none.
//! Nothing is re-encoded; the body is never touched.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mail_parser::{HeaderName, HeaderValue, MessageParser};

use uuid::Uuid;

use crate::{
    domain::{
        EmailAddress, RecipientKind, Track,
        field_checks::{check_metadata, check_tags},
    },
    submission::RawMessage,
};

const TAG_HEADER: &str = "x-mailgate-tag";
const TRACK_HEADER: &str = "x-mailgate-track";
const UNSUBSCRIBE_HEADER: &str = "x-mailgate-unsubscribe";
const METADATA_PREFIX: &str = "x-mailgate-metadata-";
const OUR_PREFIX: &str = "x-mailgate-";

/// Why a submitted message is refused (answered `554 5.6.0`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("the message is empty")]
    Empty,
    // A bare CR or LF can end DATA early at a lenient upstream (SMTP smuggling), and lettre
    // would pass it on unchanged, so such messages are refused rather than relayed.
    #[error("line {0} does not end with CRLF; bare CR or LF is not accepted")]
    BareLineEnding(usize),
    #[error("the header section contains a NUL byte")]
    Nul,
    #[error("the message has no header section")]
    NoHeaders,
    #[error("the message has no From header")]
    NoFrom,
    #[error("{0}")]
    Mailgate(String),
}

/// A submitted message ready to store.
#[derive(Debug)]
pub struct Submitted {
    /// The bytes to store and relay.
    pub mime: Vec<u8>,
    /// `<…>`, as found in the message or as added.
    pub message_id: String,
    pub subject: String,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    /// `X-Mailgate-Track`, if the message had one.
    pub track: Option<Track>,
    /// `X-Mailgate-Unsubscribe: one-click`.
    pub unsubscribe: bool,
    /// Lower-cased addresses of the To and Cc headers, to tell recipients' kinds apart.
    pub to: Vec<String>,
    pub cc: Vec<String>,
}

/// Reads submitted MIME for an envelope, into what the submission core commits. The bytes
/// stay as given, apart from the header edits described above.
pub fn prepare(
    from: EmailAddress,
    recipients: Vec<EmailAddress>,
    data: &[u8],
) -> Result<RawMessage, MessageError> {
    let id = Uuid::now_v7();
    let new_message_id = format!("<{}@{}>", id.simple(), from.ascii_domain());
    let message = read(data, &new_message_id, chrono::Utc::now())?;
    if message.unsubscribe && recipients.len() != 1 {
        return Err(MessageError::Mailgate(format!(
            "X-Mailgate-Unsubscribe: {}",
            crate::submission::ONE_RECIPIENT.replace("in to, cc and bcc together", "(RCPT TO)")
        )));
    }
    let recipients = recipients
        .into_iter()
        .map(|addr| {
            let lower = addr.as_str().to_ascii_lowercase();
            let kind = if message.to.contains(&lower) {
                RecipientKind::To
            } else if message.cc.contains(&lower) {
                RecipientKind::Cc
            } else {
                RecipientKind::Bcc
            };
            (kind, addr)
        })
        .collect();
    Ok(RawMessage {
        id,
        from,
        recipients,
        mime: message.mime,
        message_id: message.message_id,
        subject: message.subject,
        tags: message.tags,
        metadata: message.metadata,
        track: message.track,
        unsubscribe: message.unsubscribe.then_some(true),
    })
}

/// Reads `data` (the DATA content, the CRLF that ends its last line included).
/// `new_message_id` is used only when the message has no Message-ID.
pub fn read(
    data: &[u8],
    new_message_id: &str,
    now: DateTime<Utc>,
) -> Result<Submitted, MessageError> {
    if data.is_empty() {
        return Err(MessageError::Empty);
    }
    check_line_endings(data)?;
    let header_end = find(data, b"\r\n\r\n").map_or(data.len(), |i| i + 2);
    if data[..header_end].contains(&0) {
        return Err(MessageError::Nul);
    }
    let parsed = MessageParser::new()
        .parse_headers(data)
        .ok_or(MessageError::NoHeaders)?;
    let headers = parsed.headers();
    if headers.is_empty() {
        return Err(MessageError::NoHeaders);
    }
    if !headers.iter().any(|h| h.name == HeaderName::From) {
        return Err(MessageError::NoFrom);
    }

    let mut removed = Vec::new();
    let mut tags = Vec::new();
    let mut metadata = BTreeMap::new();
    let mut track = None;
    let mut unsubscribe = false;
    for h in headers {
        let HeaderName::Other(name) = &h.name else {
            continue;
        };
        let lower = name.to_ascii_lowercase();
        if !lower.starts_with(OUR_PREFIX) {
            continue;
        }
        let value = header_text(data, h);
        if lower == TAG_HEADER {
            tags.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            );
        } else if lower == TRACK_HEADER {
            track = Some(Track::parse_header(&value).map_err(MessageError::Mailgate)?);
        } else if lower == UNSUBSCRIBE_HEADER {
            if !value.eq_ignore_ascii_case("one-click") {
                return Err(MessageError::Mailgate(format!(
                    "X-Mailgate-Unsubscribe: `{value}` is not `one-click`"
                )));
            }
            unsubscribe = true;
        } else if lower.starts_with(METADATA_PREFIX) {
            // The key as the client spelled it (header names keep their case on the wire);
            // the prefix is ASCII, so slicing after it stays on a character boundary.
            let key = &name[METADATA_PREFIX.len()..];
            if key.is_empty() {
                return Err(MessageError::Mailgate(format!(
                    "{name}: a metadata header needs a key after X-Mailgate-Metadata-"
                )));
            }
            metadata.insert(key.to_string(), value);
        } else {
            // A typo like X-Mailgate-Tags would otherwise silently lose data.
            return Err(MessageError::Mailgate(format!(
                "{name}: unknown header; mailgate reads X-Mailgate-Tag, X-Mailgate-Track, X-Mailgate-Unsubscribe and X-Mailgate-Metadata-<key>"
            )));
        }
        removed.push(h.offset_field as usize..h.offset_end as usize);
    }
    let mut errors = Vec::new();
    let tags = check_tags(tags, &mut errors);
    let metadata = check_metadata(metadata, &mut errors);
    if let Some(e) = errors.first() {
        let header = if e.field.starts_with("tags") {
            "X-Mailgate-Tag"
        } else {
            "X-Mailgate-Metadata"
        };
        return Err(MessageError::Mailgate(format!("{header}: {}", e.message)));
    }

    let has = |name: HeaderName<'_>| headers.iter().any(|h| h.name == name);
    if unsubscribe && (has(HeaderName::ListUnsubscribe) || has(HeaderName::ListUnsubscribePost)) {
        return Err(MessageError::Mailgate(
            "List-Unsubscribe: mailgate writes it for X-Mailgate-Unsubscribe: one-click; send one or the other".into(),
        ));
    }
    let mut prepend = String::new();
    let message_id = match headers.iter().find(|h| h.name == HeaderName::MessageId) {
        Some(h) => match &h.value {
            HeaderValue::Text(id) => format!("<{}>", clean(id)),
            // Present but unreadable: kept as it is, and recorded as written.
            _ => header_text(data, h),
        },
        None => {
            prepend.push_str(&format!("Message-ID: {new_message_id}\r\n"));
            new_message_id.to_string()
        }
    };
    if !has(HeaderName::Date) {
        prepend.push_str(&format!("Date: {}\r\n", now.to_rfc2822()));
    }

    let mut mime = Vec::with_capacity(prepend.len() + data.len());
    mime.extend_from_slice(prepend.as_bytes());
    let mut at = 0;
    for range in &removed {
        mime.extend_from_slice(&data[at..range.start]);
        at = range.end;
    }
    mime.extend_from_slice(&data[at..]);

    let addresses = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .filter_map(|addr| addr.address.as_deref())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
    };
    Ok(Submitted {
        mime,
        message_id,
        subject: parsed.subject().map(clean).unwrap_or_default(),
        tags,
        metadata,
        track,
        unsubscribe,
        to: addresses(parsed.to()),
        cc: addresses(parsed.cc()),
    })
}

/// Every line ends with CRLF, and no CR stands alone. Returns the first bad line (1-based).
fn check_line_endings(data: &[u8]) -> Result<(), MessageError> {
    let mut line = 1;
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'\r' if data.get(i + 1) != Some(&b'\n') => {
                return Err(MessageError::BareLineEnding(line));
            }
            b'\n' => {
                if i == 0 || data[i - 1] != b'\r' {
                    return Err(MessageError::BareLineEnding(line));
                }
                line += 1;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A header's value unfolded and trimmed, decoded (RFC 2047) where mail-parser decoded it.
fn header_text(data: &[u8], h: &mail_parser::Header<'_>) -> String {
    match &h.value {
        HeaderValue::Text(text) => clean(text),
        _ => {
            let raw = data
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            let unfolded: Vec<u8> = raw
                .iter()
                .copied()
                .filter(|b| *b != b'\r' && *b != b'\n')
                .collect();
            clean(String::from_utf8_lossy(&unfolded).trim())
        }
    }
}

/// Postgres text and jsonb cannot hold NUL (an RFC 2047 word can still decode to one), and
/// folding must not leak line breaks into stored values.
fn clean(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .filter(|c| *c != '\r' && *c != '\n')
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "<new@example.com>";

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn keeps_a_complete_message_byte_for_byte() {
        let data = b"From: A <a@example.com>\r\nTo: b@example.com\r\nSubject: Hi\r\nDate: Thu, 02 Jan 2025 03:04:05 +0000\r\nMessage-ID: <x1@example.com>\r\n\r\nBody \xc3\xa9\r\n.leading dot\r\nend";
        let m = read(data, ID, now()).unwrap();
        assert_eq!(m.mime, data.to_vec());
        assert_eq!(m.message_id, "<x1@example.com>");
        assert_eq!(m.subject, "Hi");
        assert_eq!(m.to, vec!["b@example.com"]);
    }

    #[test]
    fn adds_message_id_and_date_only_when_absent() {
        let data = b"From: a@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody";
        let m = read(data, ID, now()).unwrap();
        let expected = format!(
            "Message-ID: {ID}\r\nDate: Thu, 2 Jan 2025 03:04:05 +0000\r\nFrom: a@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody"
        );
        assert_eq!(String::from_utf8(m.mime).unwrap(), expected);
        assert_eq!(m.message_id, ID);
        assert_eq!(m.subject, "café");
    }

    #[test]
    fn takes_out_mailgate_headers_including_folded_lines() {
        let data = b"From: a@example.com\r\nX-Mailgate-Tag: welcome,\r\n onboarding\r\nDate: Thu, 02 Jan 2025 03:04:05 +0000\r\nX-Mailgate-Metadata-User-Id: 42\r\nMessage-ID: <m@example.com>\r\nx-mailgate-tag: beta\r\n\r\nX-Mailgate-Tag: in the body stays\r\n";
        let m = read(&data[..data.len() - 2], ID, now()).unwrap();
        assert_eq!(
            String::from_utf8(m.mime).unwrap(),
            "From: a@example.com\r\nDate: Thu, 02 Jan 2025 03:04:05 +0000\r\nMessage-ID: <m@example.com>\r\n\r\nX-Mailgate-Tag: in the body stays"
        );
        assert_eq!(m.tags, vec!["welcome", "onboarding", "beta"]);
        assert_eq!(m.metadata.get("User-Id").map(String::as_str), Some("42"));
    }

    #[test]
    fn refuses_what_cannot_be_relayed_safely() {
        let cases: [(&[u8], MessageError); 6] = [
            (b"", MessageError::Empty),
            (
                b"From: a@example.com\r\n\r\nline\n.\r\nMAIL FROM:<x@y.z>",
                MessageError::BareLineEnding(3),
            ),
            (
                b"From: a@example.com\r\n\r\nbare\rCR",
                MessageError::BareLineEnding(3),
            ),
            (b"From: a\0@example.com\r\n\r\nx", MessageError::Nul),
            (b"Subject: no sender\r\n\r\nx", MessageError::NoFrom),
            (b"\r\njust a body", MessageError::NoHeaders),
        ];
        for (data, expected) in cases {
            assert_eq!(read(data, ID, now()).unwrap_err(), expected, "{data:?}");
        }
    }

    #[test]
    fn refuses_bad_or_unknown_mailgate_headers() {
        for data in [
            &b"From: a@example.com\r\nX-Mailgate-Tags: typo\r\n\r\nx"[..],
            b"From: a@example.com\r\nX-Mailgate-Tag: not a tag!\r\n\r\nx",
            b"From: a@example.com\r\nX-Mailgate-Metadata-: v\r\n\r\nx",
        ] {
            assert!(matches!(
                read(data, ID, now()),
                Err(MessageError::Mailgate(_))
            ));
        }
    }

    #[test]
    fn reads_and_takes_out_the_unsubscribe_header() {
        let data = b"From: a@example.com\r\nX-Mailgate-Unsubscribe: One-Click\r\nDate: Thu, 02 Jan 2025 03:04:05 +0000\r\nMessage-ID: <m@example.com>\r\n\r\nx";
        let m = read(data, ID, now()).unwrap();
        assert!(m.unsubscribe);
        assert!(!String::from_utf8(m.mime).unwrap().contains("Unsubscribe"));
        for data in [
            &b"From: a@example.com\r\nX-Mailgate-Unsubscribe: yes\r\n\r\nx"[..],
            b"From: a@example.com\r\nX-Mailgate-Unsubscribe: one-click\r\nList-Unsubscribe: <mailto:u@example.com>\r\n\r\nx",
        ] {
            assert!(matches!(
                read(data, ID, now()),
                Err(MessageError::Mailgate(_))
            ));
        }
    }

    #[test]
    fn records_cc_for_recipient_kinds() {
        let data = b"From: a@example.com\r\nTo: B <B@Example.com>\r\nCc: c@example.com, D <d@example.com>\r\n\r\nx";
        let m = read(data, ID, now()).unwrap();
        assert_eq!(m.to, vec!["b@example.com"]);
        assert_eq!(m.cc, vec!["c@example.com", "d@example.com"]);
    }
}
