//! What a piece of mail sent back to mailgate reports: a delivery status notification
//! (RFC 3464), a feedback report (ARF, RFC 5965), a bounce in some other format, or nothing.
//!
//! mail-parser reads the MIME. The machine-readable parts of both report types
//! (`message/delivery-status`, `message/feedback-report`) are blocks of header-style fields
//! separated by blank lines; each block is read with mail-parser's header parser too.

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

/// Text kept from a bounce that is not an RFC 3464 report, and from a diagnostic.
const MAX_TEXT: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Dsn(Dsn),
    Feedback(Feedback),
    /// Not a report, but sent with the null return path by a mailer daemon (or with a
    /// bounce's subject): a bounce in some other format, known only by the address it came to.
    PlainBounce {
        text: String,
    },
    NotAReport,
}

/// RFC 3464: one block about the message, then one per recipient.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dsn {
    pub reporting_mta: Option<String>,
    pub recipients: Vec<DsnRecipient>,
    /// The human-readable first part, shortened.
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DsnRecipient {
    /// The address, without its `rfc822;` type.
    pub final_recipient: Option<String>,
    pub original_recipient: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded`.
    pub action: String,
    /// The enhanced status code, e.g. `5.1.1`.
    pub status: Option<String>,
    /// e.g. `smtp; 550 5.1.1 <ada@example.com>: Recipient address rejected`.
    pub diagnostic_code: Option<String>,
    pub remote_mta: Option<String>,
}

impl DsnRecipient {
    /// A permanent failure: `failed` with a 5.x.x status (or no status at all).
    pub fn is_permanent_failure(&self) -> bool {
        self.action == "failed" && self.status.as_deref().is_none_or(|s| s.starts_with('5'))
    }

    /// The SMTP reply code in a `smtp;` diagnostic, e.g. 550.
    pub fn smtp_code(&self) -> Option<i32> {
        let diag = self.diagnostic_code.as_deref()?;
        let (kind, text) = diag.split_once(';')?;
        if !kind.trim().eq_ignore_ascii_case("smtp") {
            return None;
        }
        let code: i32 = text.trim().get(..3)?.parse().ok()?;
        (200..600).contains(&code).then_some(code)
    }

    /// Whether the report is about `email` (either recipient field, case-insensitive).
    pub fn is_about(&self, email: &str) -> bool {
        [&self.final_recipient, &self.original_recipient]
            .into_iter()
            .flatten()
            .any(|a| a.eq_ignore_ascii_case(email))
    }
}

/// RFC 5965: one block of fields, and the message (or its headers) complained about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Feedback {
    /// `abuse`, `fraud`, `virus`, `other`, …
    pub feedback_type: String,
    pub user_agent: Option<String>,
    pub original_rcpt_to: Option<String>,
    pub source_ip: Option<String>,
    pub arrival_date: Option<String>,
    /// The `Return-Path` of the enclosed original: a VERP address when the report went
    /// somewhere else (a feedback loop's own address).
    pub original_return_path: Option<String>,
}

pub fn parse(raw: &[u8], null_sender: bool) -> Report {
    let Some(message) = MessageParser::new().parse(raw) else {
        return Report::NotAReport;
    };
    let report_type = message
        .content_type()
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    match report_type.as_deref() {
        Some("delivery-status") => {
            if let Some(dsn) = delivery_status(&message) {
                return Report::Dsn(dsn);
            }
        }
        Some("feedback-report") => {
            if let Some(feedback) = feedback_report(&message) {
                return Report::Feedback(feedback);
            }
        }
        _ => {}
    }
    if null_sender && looks_like_a_bounce(&message) {
        return Report::PlainBounce {
            text: shorten(
                message
                    .body_text(0)
                    .as_deref()
                    .unwrap_or("(no text part)")
                    .trim(),
            ),
        };
    }
    Report::NotAReport
}

fn is_type(part: &MessagePart<'_>, ctype: &str, subtypes: &[&str]) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(ctype)
            && ct
                .subtype()
                .is_some_and(|s| subtypes.iter().any(|t| s.eq_ignore_ascii_case(t)))
    })
}

fn delivery_status(message: &Message<'_>) -> Option<Dsn> {
    let part = message
        .parts
        .iter()
        .find(|p| is_type(p, "message", &["delivery-status", "global-delivery-status"]))?;
    let mut blocks = field_blocks(part.contents());
    if blocks.is_empty() {
        return None;
    }
    let per_message = blocks.remove(0);
    let recipients: Vec<DsnRecipient> = blocks
        .iter()
        .filter_map(|block| {
            let action = field(block, "Action")?.to_ascii_lowercase();
            Some(DsnRecipient {
                final_recipient: field(block, "Final-Recipient").map(|a| address_of(&a)),
                original_recipient: field(block, "Original-Recipient").map(|a| address_of(&a)),
                action,
                status: field(block, "Status")
                    .and_then(|s| s.split_whitespace().next().map(str::to_string)),
                diagnostic_code: field(block, "Diagnostic-Code").map(|d| shorten(&d)),
                remote_mta: field(block, "Remote-MTA").map(|a| address_of(&a)),
            })
        })
        .collect();
    if recipients.is_empty() {
        return None;
    }
    Some(Dsn {
        reporting_mta: field(&per_message, "Reporting-MTA").map(|a| address_of(&a)),
        recipients,
        text: message
            .body_text(0)
            .map(|t| shorten(t.trim()))
            .filter(|t| !t.is_empty()),
    })
}

fn feedback_report(message: &Message<'_>) -> Option<Feedback> {
    let part = message
        .parts
        .iter()
        .find(|p| is_type(p, "message", &["feedback-report"]))?;
    let block = field_blocks(part.contents()).into_iter().next()?;
    let original_return_path = message.parts.iter().find_map(|p| match &p.body {
        PartType::Message(original) => original.return_address().map(str::to_string),
        _ if is_type(p, "text", &["rfc822-headers"]) => MessageParser::new()
            .parse_headers(p.contents())
            .and_then(|h| h.return_address().map(str::to_string)),
        _ => None,
    });
    Some(Feedback {
        feedback_type: field(&block, "Feedback-Type")?.to_ascii_lowercase(),
        user_agent: field(&block, "User-Agent"),
        original_rcpt_to: field(&block, "Original-Rcpt-To").map(|a| address_of(&a)),
        source_ip: field(&block, "Source-IP"),
        arrival_date: field(&block, "Arrival-Date").or_else(|| field(&block, "Received-Date")),
        original_return_path,
    })
}

/// The blocks of fields in a report part, each as the bytes of a header section.
fn field_blocks(body: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    text.split("\n\n")
        .map(|b| b.trim_matches(['\n', ' ', '\t']))
        .filter(|b| !b.is_empty())
        .map(|b| format!("{}\r\n\r\n", b.replace('\n', "\r\n")).into_bytes())
        .collect()
}

/// One field of a block, unfolded (each run of white space one space) and trimmed.
fn field(block: &[u8], name: &str) -> Option<String> {
    let headers = MessageParser::new().parse_headers(block)?;
    let value = headers.header(name)?;
    let text = value
        .as_text()?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!text.is_empty()).then_some(text)
}

/// `rfc822; ada@example.com` → `ada@example.com` (also `dns; mx.example.com`).
fn address_of(value: &str) -> String {
    let bare = value
        .split_once(';')
        .map_or(value, |(_, address)| address)
        .trim();
    bare.trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// Bounces from MTAs that do not send RFC 3464 reports: a mailer daemon's address, or a
/// bounce's subject, on mail with the null return path.
fn looks_like_a_bounce(message: &Message<'_>) -> bool {
    let from_daemon = message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .and_then(|a| a.split('@').next())
        .is_some_and(|local| {
            let local = local.to_ascii_lowercase();
            local == "mailer-daemon" || local == "postmaster"
        });
    let subject = message.subject().unwrap_or("").to_ascii_lowercase();
    let bounce_subject = [
        "undeliver",
        "delivery status",
        "delivery failure",
        "delivery has failed",
        "returned mail",
        "failure notice",
        "mail delivery failed",
        "could not be delivered",
    ]
    .iter()
    .any(|s| subject.contains(s));
    from_daemon || bounce_subject
}

fn shorten(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_string();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSN: &str = "From: MAILER-DAEMON@mta.example.net\r\n\
To: b-7-0011223344556677@bounces.example.com\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B1\"\r\n\
\r\n\
--B1\r\n\
Content-Type: text/plain\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
--B1\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mta.example.net\r\n\
Arrival-Date: Sat, 28 Nov 2026 08:00:00 +0000\r\n\
\r\n\
Final-Recipient: rfc822; ada@example.org\r\n\
Original-Recipient: rfc822;ada@example.org\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; mx.example.org\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <ada@example.org>: Recipient address\r\n\
\x20   rejected: User unknown\r\n\
--B1\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
From: billing@example.com\r\n\
Subject: Your receipt\r\n\
--B1--\r\n";

    #[test]
    fn reads_a_permanent_failure() {
        let Report::Dsn(dsn) = parse(DSN.as_bytes(), true) else {
            panic!("not a DSN");
        };
        assert_eq!(dsn.reporting_mta.as_deref(), Some("mta.example.net"));
        let r = &dsn.recipients[0];
        assert!(r.is_permanent_failure());
        assert!(r.is_about("ADA@example.org"));
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(r.smtp_code(), Some(550));
        assert_eq!(r.remote_mta.as_deref(), Some("mx.example.org"));
        assert_eq!(
            r.diagnostic_code.as_deref(),
            Some("smtp; 550 5.1.1 <ada@example.org>: Recipient address rejected: User unknown")
        );
        assert!(dsn.text.unwrap().contains("could not be delivered"));
    }

    #[test]
    fn a_delay_is_not_a_failure() {
        let delayed = DSN
            .replace("Action: failed", "Action: delayed")
            .replace("Status: 5.1.1", "Status: 4.4.1");
        let Report::Dsn(dsn) = parse(delayed.as_bytes(), true) else {
            panic!("not a DSN");
        };
        assert_eq!(dsn.recipients[0].action, "delayed");
        assert!(!dsn.recipients[0].is_permanent_failure());
    }

    #[test]
    fn reads_a_feedback_report() {
        let arf = "From: fbl@isp.example\r\n\
To: fbl@bounces.example.com\r\n\
Subject: FW: Your receipt\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"A\"\r\n\
\r\n\
--A\r\n\
Content-Type: text/plain\r\n\
\r\n\
This is an email abuse report.\r\n\
--A\r\n\
Content-Type: message/feedback-report\r\n\
\r\n\
Feedback-Type: abuse\r\n\
User-Agent: ExampleFBL/1.0\r\n\
Version: 1\r\n\
Original-Rcpt-To: <ada@example.org>\r\n\
Source-IP: 192.0.2.1\r\n\
\r\n\
--A\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Return-Path: <b-7-0011223344556677@bounces.example.com>\r\n\
From: billing@example.com\r\n\
To: ada@example.org\r\n\
Subject: Your receipt\r\n\
\r\n\
Thanks.\r\n\
--A--\r\n";
        let Report::Feedback(f) = parse(arf.as_bytes(), false) else {
            panic!("not a feedback report");
        };
        assert_eq!(f.feedback_type, "abuse");
        assert_eq!(f.original_rcpt_to.as_deref(), Some("ada@example.org"));
        assert_eq!(
            f.original_return_path.as_deref(),
            Some("b-7-0011223344556677@bounces.example.com")
        );
    }

    #[test]
    fn other_mail_is_not_a_report() {
        let plain = "From: ada@example.org\r\nSubject: hello\r\n\r\nHi!\r\n";
        assert_eq!(parse(plain.as_bytes(), false), Report::NotAReport);
        assert_eq!(parse(plain.as_bytes(), true), Report::NotAReport);
        let bounce = "From: MAILER-DAEMON@old.example\r\nSubject: failure notice\r\n\r\nSorry, no mailbox here by that name.\r\n";
        assert_eq!(
            parse(bounce.as_bytes(), true),
            Report::PlainBounce {
                text: "Sorry, no mailbox here by that name.".into()
            }
        );
        // The same from a real sender: an auto-reply, not a bounce.
        assert_eq!(parse(bounce.as_bytes(), false), Report::NotAReport);
    }
}
