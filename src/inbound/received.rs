//! Mail to a project's inbound domains, parsed into the `email.received` webhook's data:
//! envelope, headers, text and HTML bodies, attachments (base64 up to a size cap).

use base64::{Engine, engine::general_purpose::STANDARD};
use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::{Value, json};

/// The webhook data for one received message, or `None` when the bytes are not a message.
pub fn payload(
    raw: &[u8],
    inbound_id: uuid::Uuid,
    mail_from: &str,
    rcpt_to: &[String],
    max_attachment_bytes: usize,
) -> Option<Value> {
    let message = MessageParser::new().parse(raw)?;
    let headers: Vec<Value> = message
        .headers_raw()
        .map(|(name, value)| json!({"name": name, "value": unfold(value)}))
        .collect();
    let attachments: Vec<Value> = message
        .attachments()
        .map(|part| {
            let bytes = part.contents();
            let content_type = part.content_type().map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            });
            let included = bytes.len() <= max_attachment_bytes;
            json!({
                "filename": part.attachment_name(),
                "content_type": content_type,
                "content_id": part.content_id(),
                "size": bytes.len(),
                "content": included.then(|| STANDARD.encode(bytes)),
                "truncated": !included,
            })
        })
        .collect();
    Some(json!({
        "inbound_id": inbound_id,
        "envelope": {"from": mail_from, "to": rcpt_to},
        "from": message.from().map(addresses),
        "to": message.to().map(addresses),
        "cc": message.cc().map(addresses),
        "reply_to": message.reply_to().map(addresses),
        "subject": message.subject(),
        "message_id": message.message_id(),
        "date": message.date().map(|d| d.to_rfc3339()),
        "text": message.body_text(0),
        "html": message.body_html(0),
        "headers": headers,
        "attachments": attachments,
    }))
}

fn addresses(address: &Address<'_>) -> Value {
    Value::Array(
        address
            .iter()
            .map(|a| json!({"email": a.address(), "name": a.name()}))
            .collect(),
    )
}

/// A raw header value as one line.
fn unfold(value: &str) -> String {
    value
        .split("\r\n")
        .flat_map(|line| line.split('\n'))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bodies_headers_and_attachments() {
        let raw = "From: Ada <ada@example.org>\r\n\
To: support@in.example.com\r\n\
Subject: Help\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"M\"\r\n\
\r\n\
--M\r\n\
Content-Type: text/plain\r\n\
\r\n\
My order is late.\r\n\
--M\r\n\
Content-Type: application/pdf; name=\"order.pdf\"\r\n\
Content-Disposition: attachment; filename=\"order.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--M--\r\n";
        let id = uuid::Uuid::now_v7();
        let p = payload(
            raw.as_bytes(),
            id,
            "ada@example.org",
            &["support@in.example.com".into()],
            100,
        )
        .unwrap();
        assert_eq!(p["subject"], "Help");
        assert_eq!(p["from"][0]["email"], "ada@example.org");
        assert_eq!(p["from"][0]["name"], "Ada");
        assert_eq!(p["text"].as_str().unwrap().trim(), "My order is late.");
        assert_eq!(p["attachments"][0]["filename"], "order.pdf");
        assert_eq!(p["attachments"][0]["content"], "JVBERi0xLjQK");
        assert_eq!(p["attachments"][0]["size"], 9);
        assert!(p["headers"].as_array().unwrap().len() >= 4);
        // Over the cap: listed, without content.
        let p = payload(raw.as_bytes(), id, "", &[], 4).unwrap();
        assert_eq!(p["attachments"][0]["content"], Value::Null);
        assert_eq!(p["attachments"][0]["truncated"], true);
    }
}
