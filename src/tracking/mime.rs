//! Tracking in mail submitted as MIME (SMTP with `X-Mailgate-Track`): each HTML part is
//! decoded, instrumented (`html`) and encoded again the way it came (7bit/8bit,
//! quoted-printable or base64), and its bytes are spliced back into the message. Every other
//! byte of the message stays as the client sent it.

use base64::{Engine, engine::general_purpose::STANDARD};
use mail_parser::{Encoding, MessageParser, MimeHeaders, PartType};

/// The message with `rewrite` applied to each HTML body part. Parts in a charset other than
/// UTF-8 or US-ASCII, and HTML attachments, are left alone.
pub fn instrument(raw: &[u8], rewrite: impl Fn(&str) -> String) -> Vec<u8> {
    let Some(message) = MessageParser::new().parse(raw) else {
        return raw.to_vec();
    };
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for part in &message.parts {
        let PartType::Html(html) = &part.body else {
            continue;
        };
        let attachment = part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        let charset_ok = part
            .content_type()
            .and_then(|ct| ct.attribute("charset"))
            .is_none_or(|c| c.eq_ignore_ascii_case("utf-8") || c.eq_ignore_ascii_case("us-ascii"));
        if attachment || !charset_ok {
            continue;
        }
        let (start, end) = (part.offset_body as usize, part.offset_end as usize);
        if start > end || end > raw.len() {
            continue;
        }
        let rewritten = rewrite(html);
        let encoded = match part.encoding {
            Encoding::QuotedPrintable => quoted_printable::encode(rewritten.as_bytes()),
            Encoding::Base64 => wrap(&STANDARD.encode(rewritten.as_bytes())),
            Encoding::None => crlf(&rewritten),
        };
        // The original body's own line ending before the boundary stays where it was.
        let body = &raw[start..end];
        let mut encoded = encoded;
        if body.ends_with(b"\r\n") && !encoded.ends_with(b"\r\n") {
            encoded.extend_from_slice(b"\r\n");
        }
        edits.push((start, end, encoded));
    }
    let mut out = Vec::with_capacity(raw.len() + 1024);
    let mut at = 0;
    for (start, end, bytes) in edits {
        out.extend_from_slice(&raw[at..start]);
        out.extend_from_slice(&bytes);
        at = end;
    }
    out.extend_from_slice(&raw[at..]);
    out
}

/// Base64 in lines of 76 characters.
fn wrap(b64: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(b64.len() + b64.len() / 38);
    for chunk in b64.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Every line ending as CRLF, as SMTP needs.
fn crlf(text: &str) -> Vec<u8> {
    text.replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(cte: &str, html_body: &str) -> String {
        format!(
            "From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"X\"\r\n\r\n\
--X\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee https://shop.example\r\n\
--X\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{html_body}\r\n\
--X--\r\n"
        )
    }

    #[test]
    fn identity_keeps_every_byte() {
        for (cte, body) in [
            (
                "7bit",
                "<p>Hi <a href=\"https://shop.example\">shop</a></p>",
            ),
            (
                "quoted-printable",
                "<p>Hi <a href=3D\"https://shop.example\">shop</a></p>",
            ),
        ] {
            let raw = message(cte, body);
            let out = instrument(raw.as_bytes(), |h| h.to_string());
            let out = String::from_utf8(out).unwrap();
            let parsed = MessageParser::new().parse(out.as_bytes()).unwrap();
            assert_eq!(
                parsed.body_html(0).unwrap().trim(),
                "<p>Hi <a href=\"https://shop.example\">shop</a></p>",
                "{cte}: {out}"
            );
            assert!(out.starts_with(&raw[..raw.find("--X\r\nContent-Type: text/html").unwrap()]));
            assert!(out.ends_with("\r\n--X--\r\n"), "{out}");
        }
    }

    #[test]
    fn rewrites_html_in_each_encoding_and_leaves_text_alone() {
        let html = "<p>Hi <a href=\"https://shop.example\">shop</a></p>";
        for (cte, body) in [
            ("7bit", html.to_string()),
            ("quoted-printable", html.replace('=', "=3D")),
            ("base64", STANDARD.encode(html)),
        ] {
            let raw = message(cte, &body);
            let out = instrument(raw.as_bytes(), |h| {
                h.replace("https://shop.example", "https://t.example/t/c/X")
            });
            let parsed = MessageParser::new().parse(&out).unwrap();
            assert!(
                parsed
                    .body_html(0)
                    .unwrap()
                    .contains("https://t.example/t/c/X"),
                "{cte}"
            );
            assert_eq!(
                parsed.body_text(0).unwrap().trim(),
                "See https://shop.example"
            );
        }
    }
}
