//! A stored message's MIME, read for the message page: its HTML and text parts and the
//! attachments it carries. The bytes shown as source are the exact bytes relayed.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub struct MimeView {
    pub html: Option<String>,
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Serialize)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub bytes: usize,
}

/// The first HTML and the first text body that are not attachments, and every attachment.
/// mail-parser would make an HTML body from a text one (and the reverse) when a message has
/// only one: only real parts are shown here.
pub fn read(mime: &[u8]) -> MimeView {
    let Some(message) = MessageParser::default().parse(mime) else {
        return MimeView::default();
    };
    let mut view = MimeView::default();
    for (i, part) in message.parts.iter().enumerate() {
        let is_attachment = message.attachments.contains(&(i as u32));
        match &part.body {
            PartType::Html(html) if !is_attachment && view.html.is_none() => {
                view.html = Some(html.to_string());
            }
            PartType::Text(text) if !is_attachment && view.text.is_none() => {
                view.text = Some(text.to_string());
            }
            _ => {}
        }
    }
    view.attachments = message
        .attachments()
        .map(|part| Attachment {
            name: part.attachment_name().unwrap_or("(no name)").to_string(),
            content_type: part.content_type().map_or_else(
                || "application/octet-stream".to_string(),
                |ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                },
            ),
            bytes: part.contents().len(),
        })
        .collect();
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_parts_and_attachments_only() {
        let mime = b"From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b--\r\n";
        let view = read(mime);
        assert_eq!(view.text.as_deref().map(str::trim), Some("hello"));
        assert!(view.html.is_none());
        assert_eq!(view.attachments.len(), 1);
        assert_eq!(view.attachments[0].name, "r.pdf");
        assert_eq!(view.attachments[0].content_type, "application/pdf");
        assert_eq!(view.attachments[0].bytes, 4);
    }
}
