//! A message that passed every check: its envelope, content and options, ready for MIME.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, Utc};

use super::{EmailAddress, Mailbox};

/// Most envelope recipients one message may have, in to, cc and bcc together.
pub const MAX_RECIPIENTS: usize = 50;

/// How a recipient was addressed; Bcc recipients never appear in the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientKind {
    To,
    Cc,
    Bcc,
}

impl RecipientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientKind::To => "to",
            RecipientKind::Cc => "cc",
            RecipientKind::Bcc => "bcc",
        }
    }
}

/// An attachment, decoded, with a content type that parses. The content is shared: the
/// messages of one request that carry the same attachment (a SendGrid mail's
/// personalizations) hold it once, not once each.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: String,
    pub content: Arc<[u8]>,
    pub content_type: lettre::message::header::ContentType,
    /// Set for inline parts referenced from the HTML as `cid:…`.
    pub content_id: Option<String>,
}

/// A message that passed every check and can be rendered to MIME.
#[derive(Debug, Clone)]
pub struct NewEmail {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<Attachment>,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub relay: Option<String>,
    pub send_at: Option<DateTime<Utc>>,
}

impl NewEmail {
    /// Every envelope recipient once, in the order given, with how it was addressed.
    pub fn recipients(&self) -> Vec<(RecipientKind, &EmailAddress)> {
        let mut seen = HashSet::new();
        let groups = [
            (RecipientKind::To, &self.to),
            (RecipientKind::Cc, &self.cc),
            (RecipientKind::Bcc, &self.bcc),
        ];
        let mut out = Vec::new();
        for (kind, list) in groups {
            for mailbox in list {
                if seen.insert(mailbox.email.as_str().to_ascii_lowercase()) {
                    out.push((kind, &mailbox.email));
                }
            }
        }
        out
    }
}
