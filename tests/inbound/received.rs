//! Mail to a project's inbound domain becomes a signed `email.received` webhook.

use base64::Engine;
use serde_json::json;

use super::{hand_in, inbound_app, inbound_log, operator_token};
use crate::support::webhook_receiver::WebhookReceiver;

#[tokio::test]
async fn mail_to_an_inbound_domain_reaches_the_webhook_parsed() {
    let receiver = WebhookReceiver::start().await;
    let app = inbound_app().start().await;
    let (status, body) = app
        .call_as(
            &operator_token(),
            reqwest::Method::PATCH,
            "/v1/projects/acme",
            Some(json!({"inbound_domains": ["In.Example.test"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["inbound_domains"], json!(["in.example.test"]));
    let (_, secret) = app
        .create_webhook(&json!({"url": receiver.url("/in"), "events": ["email.received"]}))
        .await;

    let pdf = b"%PDF-1.4 a tiny test file\n";
    let raw = format!(
        "From: Ada <ada@example.org>\r\n\
To: support@in.example.test\r\n\
Subject: Where is my order?\r\n\
Message-ID: <q1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"M\"\r\n\
\r\n\
--M\r\n\
Content-Type: multipart/alternative; boundary=\"A\"\r\n\
\r\n\
--A\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Order 1042 has not arrived.\r\n\
--A\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Order <b>1042</b> has not arrived.</p>\r\n\
--A--\r\n\
--M\r\n\
Content-Type: application/pdf; name=\"order.pdf\"\r\n\
Content-Disposition: attachment; filename=\"order.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
{}\r\n\
--M--\r\n",
        base64::engine::general_purpose::STANDARD.encode(pdf)
    );
    hand_in(
        app.inbound_addr.unwrap(),
        Some("ada@example.org"),
        "support@in.example.test",
        raw.as_bytes(),
    )
    .await
    .expect("accepted");
    app.drain().await;

    let got = receiver
        .wait_until(super::WAIT, |got| !got.is_empty())
        .await;
    let hook = &got[0];
    hook.verify(&secret).expect("signed");
    let body = hook.json();
    assert_eq!(body["type"], "email.received");
    let data = &body["data"];
    assert_eq!(data["from"][0]["email"], "ada@example.org");
    assert_eq!(data["from"][0]["name"], "Ada");
    assert_eq!(data["to"][0]["email"], "support@in.example.test");
    assert_eq!(data["envelope"]["to"], json!(["support@in.example.test"]));
    assert_eq!(data["subject"], "Where is my order?");
    assert_eq!(data["message_id"], "q1@example.org");
    assert_eq!(
        data["text"].as_str().unwrap().trim(),
        "Order 1042 has not arrived."
    );
    assert!(data["html"].as_str().unwrap().contains("<b>1042</b>"));
    let attachment = &data["attachments"][0];
    assert_eq!(attachment["filename"], "order.pdf");
    assert_eq!(attachment["content_type"], "application/pdf");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(attachment["content"].as_str().unwrap())
            .unwrap(),
        pdf
    );
    assert!(
        data["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "Subject")
    );
    let log = inbound_log(&app).await;
    assert_eq!(log[0]["kind"], "received");
    assert_eq!(log[0]["status"], "processed");
}

/// Issue 25: each attachment was capped, but not their sum, so one message of many
/// attachments made a webhook (and a delivery row per endpoint) of any size. The whole
/// `data` now stays within `inbound.max_payload_bytes`; what is left out is flagged.
#[tokio::test]
async fn an_email_received_payload_stays_within_its_bound() {
    const BOUND: usize = 64 * 1024;
    let receiver = WebhookReceiver::start().await;
    let app = inbound_app()
        .configure(|c| c.inbound.max_payload_bytes = BOUND)
        .start()
        .await;
    let (status, body) = app
        .call_as(
            &operator_token(),
            reqwest::Method::PATCH,
            "/v1/projects/acme",
            Some(json!({"inbound_domains": ["in.example.test"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.create_webhook(&json!({"url": receiver.url("/in"), "events": ["email.received"]}))
        .await;

    // Four attachments of 30 KB, each far below `max_attachment_bytes` (5 MiB): 160 KB of
    // base64 in all.
    let mut raw = String::from(
        "From: ada@example.org\r\nTo: support@in.example.test\r\nSubject: Scans\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n\
--M\r\nContent-Type: text/plain\r\n\r\nFour scans attached.\r\n",
    );
    for i in 0..4 {
        let content = base64::engine::general_purpose::STANDARD.encode(vec![b'0' + i; 30_000]);
        let wrapped: Vec<&str> = content
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        raw.push_str(&format!(
            "--M\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"scan{i}.png\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            wrapped.join("\r\n")
        ));
    }
    raw.push_str("--M--\r\n");
    hand_in(
        app.inbound_addr.unwrap(),
        Some("ada@example.org"),
        "support@in.example.test",
        raw.as_bytes(),
    )
    .await
    .expect("accepted");
    app.drain().await;

    let got = receiver
        .wait_until(super::WAIT, |got| !got.is_empty())
        .await;
    let data = &got[0].json()["data"];
    let data_len = serde_json::to_vec(data).unwrap().len();
    assert!(data_len <= BOUND, "{data_len} bytes of data");
    assert!(
        got[0].body.len() < BOUND + 200,
        "{} bytes",
        got[0].body.len()
    );
    assert_eq!(data["truncated"], true);
    assert_eq!(
        data["text"].as_str().unwrap().trim(),
        "Four scans attached."
    );
    let attachments = data["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 4, "every attachment is listed");
    let with_content: Vec<bool> = attachments
        .iter()
        .map(|a| a["content"].is_string())
        .collect();
    assert_eq!(
        with_content,
        [true, false, false, false],
        "40 KB of base64 each"
    );
    for a in &attachments[1..] {
        assert_eq!(a["truncated"], true);
        assert_eq!(a["size"], 30_000);
    }
}
