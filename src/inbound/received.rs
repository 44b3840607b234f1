//! Mail to a project's inbound domains, parsed into the `email.received` webhook's data:
//! envelope, headers, text and HTML bodies, attachments (base64 up to a size cap).

use base64::{Engine, engine::general_purpose::STANDARD};
use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::{Value, json};

/// The webhook data for one received message, or `None` when the bytes are not a message.
///
/// Its JSON stays within `max_payload_bytes` whatever the message, so that an endpoint
/// (and the delivery row kept per endpoint) never gets more. What does not fit is left out,
/// in this order of keeping: the text body, the HTML body, the headers, the list of
/// attachments, then their contents in order (each at most `max_attachment_bytes`). A cut
/// body is cut at a character; anything left out makes `"truncated": true`, and an
/// attachment without its content says `"truncated": true` too.
pub fn payload(
    raw: &[u8],
    inbound_id: uuid::Uuid,
    mail_from: &str,
    rcpt_to: &[String],
    max_attachment_bytes: usize,
    max_payload_bytes: usize,
) -> Option<Value> {
    let message = MessageParser::new().parse(raw)?;
    let mut payload = json!({
        "inbound_id": inbound_id,
        "envelope": {"from": mail_from, "to": rcpt_to},
        "from": message.from().map(addresses),
        "to": message.to().map(addresses),
        "cc": message.cc().map(addresses),
        "reply_to": message.reply_to().map(addresses),
        "subject": message.subject(),
        "message_id": message.message_id(),
        "date": message.date().map(|d| d.to_rfc3339()),
        "text": null,
        "html": null,
        "headers": [],
        "attachments": [],
        "truncated": false,
    });
    let mut room = Room {
        left: max_payload_bytes.saturating_sub(json_len(&payload)),
        truncated: false,
    };
    // Parsed address lists and a subject can be as long as the headers they come from; the
    // envelope and ids always fit (`inbound.max_payload_bytes` is at least 16 KiB).
    if room.left < max_payload_bytes / 2 {
        for field in [
            "from",
            "to",
            "cc",
            "reply_to",
            "subject",
            "message_id",
            "date",
        ] {
            payload[field] = Value::Null;
        }
        room.left = max_payload_bytes.saturating_sub(json_len(&payload));
        room.truncated = true;
    }
    for (field, body) in [
        ("text", message.body_text(0)),
        ("html", message.body_html(0)),
    ] {
        if let Some(body) = body {
            // `null` (4 bytes) becomes a string.
            let kept = room.cut(&body, 4);
            payload[field] = Value::String(kept.to_string());
        }
    }
    let headers = message
        .headers_raw()
        .map(|(name, value)| json!({"name": name, "value": unfold(value)}));
    payload["headers"] = Value::Array(room.take(headers));
    let parts: Vec<_> = message.attachments().collect();
    let listed = room.take(parts.iter().map(|part| {
        let content_type = part.content_type().map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        });
        json!({
            "filename": part.attachment_name(),
            "content_type": content_type,
            "content_id": part.content_id(),
            "size": part.contents().len(),
            "content": null,
            "truncated": true,
        })
    }));
    let mut attachments = listed;
    for (entry, part) in attachments.iter_mut().zip(&parts) {
        let bytes = part.contents();
        // Base64 needs no escaping: its length plus quotes replaces `null`; `false`
        // replaces `true`.
        let encoded_len = bytes.len().div_ceil(3) * 4;
        if bytes.len() <= max_attachment_bytes && room.fits((encoded_len + 2 + 1).saturating_sub(4))
        {
            entry["content"] = Value::String(STANDARD.encode(bytes));
            entry["truncated"] = Value::Bool(false);
        } else {
            room.truncated = true;
        }
    }
    payload["attachments"] = Value::Array(attachments);
    payload["truncated"] = Value::Bool(room.truncated);
    Some(payload)
}

/// What is left of the payload's allowance, and whether anything was left out.
struct Room {
    left: usize,
    truncated: bool,
}

impl Room {
    /// Takes `bytes` when they fit.
    fn fits(&mut self, bytes: usize) -> bool {
        if bytes <= self.left {
            self.left -= bytes;
            true
        } else {
            false
        }
    }

    /// The longest start of `text` whose JSON string fits in place of `replacing` bytes.
    fn cut<'t>(&mut self, text: &'t str, replacing: usize) -> &'t str {
        let mut len = 2; // the quotes
        let mut end = text.len();
        for (at, c) in text.char_indices() {
            let more = escaped_len(c);
            if len + more > self.left + replacing {
                end = at;
                self.truncated = true;
                break;
            }
            len += more;
        }
        self.left = (self.left + replacing).saturating_sub(len);
        &text[..end]
    }

    /// The items, in order, as long as each fits in the array they go in.
    fn take(&mut self, items: impl Iterator<Item = Value>) -> Vec<Value> {
        let mut kept = Vec::new();
        for item in items {
            // One comma between items.
            if self.fits(json_len(&item) + usize::from(!kept.is_empty())) {
                kept.push(item);
            } else {
                self.truncated = true;
            }
        }
        kept
    }
}

fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

/// Bytes of `c` in a JSON string as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
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
            1 << 20,
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
        assert_eq!(p["truncated"], false);
        // Over the cap: listed, without content.
        let p = payload(raw.as_bytes(), id, "", &[], 4, 1 << 20).unwrap();
        assert_eq!(p["attachments"][0]["content"], Value::Null);
        assert_eq!(p["attachments"][0]["truncated"], true);
    }

    /// A message of `n` attachments of `size` bytes each, and a text body of `text` bytes.
    fn big_message(n: usize, size: usize, text: usize) -> String {
        let mut raw = String::from(
            "From: ada@example.org\r\nTo: in@in.example.com\r\nSubject: Big\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n\
--M\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        );
        // Quotes and non-ASCII, so the cut must count JSON escapes and keep whole characters.
        let line = "\"é\" says ada\r\n";
        while raw.len() < text + 200 {
            raw.push_str(line);
        }
        for i in 0..n {
            raw.push_str(&format!(
                "--M\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"f{i}.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                STANDARD.encode(vec![b'x'; size])
            ));
        }
        raw.push_str("--M--\r\n");
        raw
    }

    #[test]
    fn the_whole_payload_stays_within_its_bound() {
        let id = uuid::Uuid::now_v7();
        let rcpt = ["in@in.example.com".to_string()];
        // Three attachments of 30 KB under a 64 KiB bound: two fit, the third is listed only.
        let raw = big_message(3, 30_000, 0);
        let p = payload(raw.as_bytes(), id, "a@b", &rcpt, 1 << 20, 64 * 1024).unwrap();
        let len = serde_json::to_vec(&p).unwrap().len();
        assert!(len <= 64 * 1024, "{len}");
        let contents: Vec<bool> = p["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["content"].is_string())
            .collect();
        assert_eq!(contents, [true, false, false], "40 KB of base64 each");
        assert_eq!(p["attachments"][1]["truncated"], true);
        assert_eq!(p["attachments"][2]["size"], 30_000);
        assert_eq!(p["truncated"], true);

        // A text body larger than the bound is cut to fit, at a character.
        let raw = big_message(1, 100, 200_000);
        for bound in [16 * 1024, 64 * 1024, 100_000] {
            let p = payload(raw.as_bytes(), id, "a@b", &rcpt, 1 << 20, bound).unwrap();
            let len = serde_json::to_vec(&p).unwrap().len();
            assert!(len <= bound && len > bound - 64, "{len} of {bound}");
            assert_eq!(p["truncated"], true);
            assert!(p["text"].as_str().unwrap().starts_with("\"é\" says ada"));
        }
        // Room enough: nothing left out.
        let p = payload(raw.as_bytes(), id, "a@b", &rcpt, 1 << 20, 1 << 20).unwrap();
        assert_eq!(p["truncated"], false);
        assert!(p["attachments"][0]["content"].is_string());
    }
}
