//! What every SDK's scenario set must have put in the SMTP sink, checked the way a recipient
//! would: headers, bodies and attachment bytes, one SMTP transaction per recipient.

use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};

use crate::support::smtp_server::{ReceivedMessage, TestSmtpServer};

/// Every client script sends these and the test checks them the same way.
pub struct Expected {
    /// Deliveries in all (the `extras` message counts three: to, cc and bcc).
    pub deliveries: usize,
}

/// The stored template the scripts send by name.
pub fn welcome_template() -> serde_json::Value {
    serde_json::json!({
        "subject": "Welcome {{ name }}",
        "html": "<p>Hi {{ name }}</p>",
        "text": "Hi {{ name }}",
    })
}

fn by_subject<'a>(received: &'a [ReceivedMessage], subject: &str) -> Vec<&'a ReceivedMessage> {
    received
        .iter()
        .filter(|m| {
            MessageParser::default()
                .parse(&m.data)
                .is_some_and(|p| p.subject() == Some(subject))
        })
        .collect()
}

fn header(m: &ReceivedMessage, name: &str) -> Option<String> {
    let parsed = MessageParser::default()
        .parse(&m.data)
        .expect("MIME parses");
    parsed.header_raw(name).map(|v| v.trim().to_string())
}

/// Waits for the deliveries and checks each scenario's mail.
pub async fn check(smtp: &TestSmtpServer, expected: Expected) {
    let received = smtp
        .wait_for(expected.deliveries, Duration::from_secs(20))
        .await;
    assert_eq!(received.len(), expected.deliveries, "deliveries");

    let plain = by_subject(&received, "plain");
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].rcpt_to, ["ada@x.test"]);
    assert_eq!(plain[0].mail_from, "from@acme.test");
    let parsed = MessageParser::default().parse(&plain[0].data).unwrap();
    assert_eq!(header(plain[0], "From").unwrap(), "Acme <from@acme.test>");
    assert!(
        header(plain[0], "To").unwrap().contains("<ada@x.test>"),
        "{:?}",
        header(plain[0], "To")
    );
    assert_eq!(parsed.body_text(0).unwrap().trim(), "hello plain");
    assert_eq!(parsed.body_html(0).unwrap().trim(), "<p>hello plain</p>");

    let attachment = by_subject(&received, "attachment");
    assert_eq!(attachment.len(), 1);
    let parsed = MessageParser::default().parse(&attachment[0].data).unwrap();
    let part = parsed.attachment(0).expect("an attachment");
    assert_eq!(part.attachment_name(), Some("report.bin"));
    assert_eq!(part.contents(), (0..=255u8).collect::<Vec<_>>().as_slice());
    assert_eq!(
        part.content_type().map(|c| (c.ctype(), c.subtype())),
        Some(("application", Some("octet-stream")))
    );

    let mut extras = by_subject(&received, "extras");
    extras.sort_by_key(|m| m.rcpt_to.clone());
    let rcpts: Vec<_> = extras.iter().map(|m| m.rcpt_to.join(",")).collect();
    assert_eq!(rcpts, ["bcc@x.test", "cc@x.test", "to@x.test"]);
    for m in &extras {
        assert_eq!(header(m, "To").unwrap(), "to@x.test");
        assert_eq!(header(m, "Cc").unwrap(), "cc@x.test");
        assert_eq!(header(m, "Bcc"), None, "Bcc is never shown");
        assert_eq!(header(m, "Reply-To").unwrap(), "reply@x.test");
        assert_eq!(header(m, "X-Entity-Ref-ID").unwrap(), "123");
    }

    let template = by_subject(&received, "Welcome Ada");
    assert_eq!(template.len(), 1);
    assert_eq!(template[0].rcpt_to, ["tpl@x.test"]);
    let parsed = MessageParser::default().parse(&template[0].data).unwrap();
    assert_eq!(parsed.body_text(0).unwrap().trim(), "Hi Ada");
    assert_eq!(parsed.body_html(0).unwrap().trim(), "<p>Hi Ada</p>");

    for (subject, rcpt) in [("batch 1", "b1@x.test"), ("batch 2", "b2@x.test")] {
        let batch = by_subject(&received, subject);
        assert_eq!(batch.len(), 1, "{subject}");
        assert_eq!(batch[0].rcpt_to, [rcpt]);
    }
    assert!(by_subject(&received, "batch 3").is_empty());
}
