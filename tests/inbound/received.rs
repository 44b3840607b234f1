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
