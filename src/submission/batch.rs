//! What the messages of one request share while they are prepared: a bound on the bytes they
//! render in all (`http.max_request_bytes_rendered`), and the scanners' verdicts by content.
//!
//! A request's messages are rendered one after another; without a bound, a batch (or one
//! SendGrid mail with many personalizations sharing a large attachment) could render far
//! more than its body holds before anything refuses it. The bound is counted as each message
//! is rendered, and the first message that crosses it refuses the whole request.
//!
//! Messages of one request often have the same content for different recipients (a SendGrid
//! mail's personalizations, a batch of the same notice). Their MIME differs only in the
//! fields that name the message and its recipients (To, Cc, Message-ID, Date, the part
//! boundaries), so the first one's verdict is kept for the others, by a digest of everything
//! else: the sender, Reply-To, subject, extra headers, text, HTML (as the sender wrote it:
//! messages are scanned before tracking) and attachments.

use std::{collections::HashMap, sync::Arc};

use sha2::{Digest, Sha256};

use super::SubmissionError;
use crate::{domain::NewEmail, scan::Ruling};

/// The digest that says two messages of a request have the same content.
pub(super) type ContentKey = [u8; 32];

/// The state one request's messages share; see the module's comment.
pub struct Batch {
    limit: usize,
    rendered: usize,
    /// `None` for a single message: nothing to share.
    verdicts: Option<HashMap<ContentKey, Ruling>>,
    /// Each attachment's digest, by its shared bytes: a file given once and sent to every
    /// personalization is hashed once. The `Arc` kept here keeps the address from being
    /// reused while the batch lives.
    attachments: Vec<(Arc<[u8]>, [u8; 32])>,
}

impl Batch {
    /// The state of a request of several messages that may render `limit` bytes in all.
    pub(super) fn new(limit: usize) -> Self {
        Batch {
            limit,
            rendered: 0,
            verdicts: Some(HashMap::new()),
            attachments: Vec::new(),
        }
    }

    /// The state of a request of one message: only the bound applies.
    pub(super) fn single(limit: usize) -> Self {
        Batch {
            verdicts: None,
            ..Batch::new(limit)
        }
    }

    /// Counts `bytes` just rendered; past the bound, the request is refused.
    pub(super) fn count(&mut self, bytes: usize) -> Result<(), SubmissionError> {
        self.rendered = self.rendered.saturating_add(bytes);
        if self.rendered > self.limit {
            return Err(SubmissionError::RequestTooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// Bytes rendered so far.
    pub fn rendered(&self) -> usize {
        self.rendered
    }

    /// The key under which `email`'s verdict is kept, or `None` when nothing is shared.
    pub(super) fn key(&mut self, email: &NewEmail) -> Option<ContentKey> {
        self.verdicts.as_ref()?;
        let mut hash = Sha256::new();
        // Each field is framed by its length, so no two different contents hash alike.
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        field(email.from.to_string().as_bytes());
        for m in &email.reply_to {
            field(m.to_string().as_bytes());
        }
        field(b"subject");
        field(email.subject.as_bytes());
        for (name, value) in &email.headers {
            field(name.as_bytes());
            field(value.as_bytes());
        }
        field(b"text");
        field(email.text.as_deref().unwrap_or("").as_bytes());
        field(b"html");
        field(email.html.as_deref().unwrap_or("").as_bytes());
        for a in &email.attachments {
            field(a.filename.as_bytes());
            // lettre's type shows its MIME type only through `Debug`.
            field(format!("{:?}", a.content_type).as_bytes());
            field(a.content_id.as_deref().unwrap_or("").as_bytes());
            let digest = match self
                .attachments
                .iter()
                .find(|(bytes, _)| Arc::ptr_eq(bytes, &a.content))
            {
                Some((_, digest)) => *digest,
                None => {
                    let digest: [u8; 32] = Sha256::digest(&a.content).into();
                    self.attachments.push((a.content.clone(), digest));
                    digest
                }
            };
            field(&digest);
        }
        Some(hash.finalize().into())
    }

    /// The verdict kept for a content, if one of this request's messages was scanned with it.
    pub(super) fn verdict(&self, key: &ContentKey) -> Option<Ruling> {
        self.verdicts.as_ref()?.get(key).cloned()
    }

    pub(super) fn remember(&mut self, key: ContentKey, ruling: &Ruling) {
        if let Some(verdicts) = &mut self.verdicts {
            verdicts.insert(key, ruling.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Attachment, Mailbox};

    fn email(to: &str, text: &str, file: Arc<[u8]>) -> NewEmail {
        NewEmail {
            from: Mailbox::parse("App <app@example.com>").unwrap(),
            to: vec![Mailbox::parse(to).unwrap()],
            cc: vec![],
            bcc: vec![],
            reply_to: vec![],
            subject: "Hello".into(),
            text: Some(text.into()),
            html: None,
            headers: vec![],
            attachments: vec![Attachment {
                filename: "a.pdf".into(),
                content: file,
                content_type: "application/pdf".parse().unwrap(),
                content_id: None,
            }],
            tags: vec![],
            metadata: Default::default(),
            relay: None,
            send_at: None,
        }
    }

    #[test]
    fn the_same_content_for_other_recipients_shares_a_key() {
        let mut batch = Batch::new(usize::MAX);
        let file: Arc<[u8]> = vec![7; 1000].into();
        let a = batch.key(&email("a@example.org", "t", file.clone()));
        let b = batch.key(&email("b@example.org", "t", file.clone()));
        // Equal bytes in another allocation are the same content too.
        let c = batch.key(&email("c@example.org", "t", vec![7; 1000].into()));
        let d = batch.key(&email("a@example.org", "other", file.clone()));
        let e = batch.key(&email("a@example.org", "t", vec![8; 1000].into()));
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_ne!(a, d);
        assert_ne!(a, e);
        assert_eq!(
            Batch::single(usize::MAX).key(&email("a@x.org", "t", file)),
            None
        );
    }

    #[test]
    fn the_bound_counts_every_message() {
        let mut batch = Batch::new(100);
        batch.count(60).unwrap();
        batch.count(40).unwrap();
        assert!(matches!(
            batch.count(1),
            Err(SubmissionError::RequestTooLarge { limit: 100 })
        ));
    }
}
