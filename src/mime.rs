//! Renders a validated message to RFC 5322 bytes, once, at accept time.
//!
//! The bytes are stored and relayed unchanged on every attempt, so the Message-ID and
//! Date stay the same across retries, relays and instances.

use lettre::message::{
    Attachment as LettreAttachment, Message, MultiPart, SinglePart,
    header::{HeaderName, HeaderValue},
};

use crate::domain::NewEmail;

#[derive(Debug, thiserror::Error)]
pub enum MimeError {
    #[error("the message is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("could not build the message: {0}")]
    Build(String),
}

/// `<id@domain>`: unique per message, using the sender's domain (in A-labels, so the
/// header stays ASCII) as RFC 5322 suggests.
pub fn message_id(id: uuid::Uuid, email: &NewEmail) -> String {
    format!("<{}@{}>", id.simple(), email.from.email.ascii_domain())
}

pub fn render(email: &NewEmail, message_id: &str, limit: usize) -> Result<Vec<u8>, MimeError> {
    let mut builder = Message::builder()
        .from(email.from.to_lettre())
        .subject(email.subject.clone())
        .message_id(Some(message_id.to_string()));
    for m in &email.to {
        builder = builder.to(m.to_lettre());
    }
    for m in &email.cc {
        builder = builder.cc(m.to_lettre());
    }
    for m in &email.reply_to {
        builder = builder.reply_to(m.to_lettre());
    }
    for (name, value) in &email.headers {
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|e| MimeError::Build(e.to_string()))?;
        builder = builder.raw_header(HeaderValue::new(name, value.clone()));
    }
    // The envelope is per recipient at relay time; this one only satisfies the builder,
    // and Bcc recipients never appear in the headers.
    let envelope_to: Vec<lettre::Address> = email
        .recipients()
        .into_iter()
        .map(|(_, addr)| addr.as_str().parse().expect("validated address"))
        .collect();
    let envelope = lettre::address::Envelope::new(
        Some(
            email
                .from
                .email
                .as_str()
                .parse()
                .expect("validated address"),
        ),
        envelope_to,
    )
    .map_err(|e| MimeError::Build(e.to_string()))?;
    builder = builder.envelope(envelope);

    let message = builder
        .multipart_or_single(body(email))
        .map_err(|e| MimeError::Build(e.to_string()))?;
    let bytes = message.formatted();
    if bytes.len() > limit {
        return Err(MimeError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    Ok(bytes)
}

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

trait BuildBody {
    fn multipart_or_single(self, body: Body) -> Result<Message, lettre::error::Error>;
}

impl BuildBody for lettre::message::MessageBuilder {
    fn multipart_or_single(self, body: Body) -> Result<Message, lettre::error::Error> {
        match body {
            Body::Single(part) => self.singlepart(part),
            Body::Multi(part) => self.multipart(part),
        }
    }
}

/// text, html, or both as alternatives; inline parts related to the HTML; files mixed around it.
fn body(email: &NewEmail) -> Body {
    let (inline, files): (Vec<_>, Vec<_>) = email
        .attachments
        .iter()
        .partition(|a| a.content_id.is_some());
    let inline_parts: Vec<SinglePart> = inline
        .iter()
        .map(|a| {
            let cid = a.content_id.clone().expect("partitioned on content_id");
            LettreAttachment::new_inline_with_name(cid, a.filename.clone())
                .body(a.content.to_vec(), a.content_type.clone())
        })
        .collect();

    let html_part = |html: &str| -> Body {
        let part = SinglePart::html(html.to_string());
        if inline_parts.is_empty() {
            Body::Single(part)
        } else {
            let mut related = MultiPart::related().singlepart(part);
            for p in &inline_parts {
                related = related.singlepart(p.clone());
            }
            Body::Multi(related)
        }
    };

    let mut content = match (&email.text, &email.html) {
        (Some(text), Some(html)) => {
            let alt = MultiPart::alternative().singlepart(SinglePart::plain(text.clone()));
            Body::Multi(match html_part(html) {
                Body::Single(p) => alt.singlepart(p),
                Body::Multi(m) => alt.multipart(m),
            })
        }
        (None, Some(html)) => html_part(html),
        (Some(text), None) => Body::Single(SinglePart::plain(text.clone())),
        (None, None) => Body::Single(SinglePart::plain(String::new())),
    };
    // Inline parts with no HTML to reference them still travel, as ordinary parts.
    let mut extra: Vec<SinglePart> = Vec::new();
    if email.html.is_none() {
        extra.extend(inline_parts.iter().cloned());
    }
    extra.extend(files.iter().map(|a| {
        LettreAttachment::new(a.filename.clone()).body(a.content.to_vec(), a.content_type.clone())
    }));
    if !extra.is_empty() {
        let mut mixed = match content {
            Body::Single(p) => MultiPart::mixed().singlepart(p),
            Body::Multi(m) => MultiPart::mixed().multipart(m),
        };
        for p in extra {
            mixed = mixed.singlepart(p);
        }
        content = Body::Multi(mixed);
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Attachment, Mailbox};

    fn mailbox(s: &str) -> Mailbox {
        Mailbox::parse(s).unwrap()
    }

    /// A checked message, built directly: this module sits below every request type.
    fn email(subject_text: &str, html: Option<&str>, attachments: Vec<Attachment>) -> NewEmail {
        NewEmail {
            from: mailbox("a@example.com"),
            to: vec![mailbox("b@example.com")],
            cc: vec![],
            bcc: vec![mailbox("secret@example.com")],
            reply_to: vec![],
            subject: "s".into(),
            text: Some(subject_text.into()),
            html: html.map(str::to_string),
            headers: vec![],
            attachments,
            tags: vec![],
            metadata: Default::default(),
            relay: None,
            send_at: None,
        }
    }

    fn attachment(name: &str, content_type: &str, content_id: Option<&str>) -> Attachment {
        Attachment {
            filename: name.into(),
            content: vec![1, 2, 3].into(),
            content_type: content_type.parse().unwrap(),
            content_id: content_id.map(str::to_string),
        }
    }

    #[test]
    fn bcc_never_reaches_the_headers() {
        let e = email("t", None, vec![]);
        let mime = String::from_utf8(render(&e, "<x@example.com>", 1 << 20).unwrap()).unwrap();
        assert!(!mime.contains("secret@example.com"), "{mime}");
        assert!(mime.contains("Message-ID: <x@example.com>"));
    }

    #[test]
    fn builds_alternative_related_and_mixed() {
        let e = email(
            "plain",
            Some("<img src=\"cid:logo\">"),
            vec![
                attachment("logo.png", "image/png", Some("logo")),
                attachment("r.pdf", "application/pdf", None),
            ],
        );
        let mime = String::from_utf8(render(&e, "<x@example.com>", 1 << 20).unwrap()).unwrap();
        for needle in [
            "multipart/mixed",
            "multipart/alternative",
            "multipart/related",
            "Content-ID: <logo>",
            "filename=\"r.pdf\"",
        ] {
            assert!(mime.contains(needle), "{needle} missing:\n{mime}");
        }
    }

    #[test]
    fn refuses_oversized_messages() {
        let e = email(&"x".repeat(5000), None, vec![]);
        assert!(matches!(
            render(&e, "<x@e.com>", 1000),
            Err(MimeError::TooLarge { .. })
        ));
    }
}
