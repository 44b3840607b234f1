//! Webhook endpoints in the providers' formats, checked by the providers' own verifiers:
//! `resend` by resend-python's and resend-node's, `sendgrid` by the sendgrid Python SDK's
//! EventWebhook helper and @sendgrid/eventwebhook.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    clients::{Runtime, run_with},
    support::{
        app::TestApp,
        smtp_server::TestSmtpServer,
        webhook_receiver::{Received, WebhookReceiver},
    },
};

/// An endpoint in `format`, one send with tags and metadata, delivered: returns the delivery
/// webhook as received (`is_delivery` finds it), the endpoint's secret and the email's id.
async fn delivered_webhook(
    app: &TestApp,
    receiver: &WebhookReceiver,
    format: &str,
    is_delivery: fn(&Value) -> bool,
) -> (Received, String, String) {
    let (_, secret) = app
        .create_webhook(&json!({"url": receiver.url("/hook"), "format": format}))
        .await;
    let id = app
        .send_ok(&json!({"from": "Acme <from@acme.test>", "to": "ada@x.test",
                         "subject": "hooked", "text": "hi",
                         "tags": ["category"],
                         "metadata": {"category": "welcome", "user_id": "42"}}))
        .await;
    app.drain().await;
    let got = receiver
        .wait_until(Duration::from_secs(20), |r| {
            r.iter().any(|r| is_delivery(&r.json()))
        })
        .await;
    let delivered = got.into_iter().find(|r| is_delivery(&r.json())).unwrap();
    // Never Standard Webhooks' headers in a provider's format.
    assert!(delivered.header("webhook-signature").is_empty());
    (delivered, secret, id)
}

/// The received headers as a JSON object, for a verifier script.
fn headers(r: &Received, names: &[&str]) -> String {
    let map: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| (n.to_string(), json!(r.header(n))))
        .collect();
    Value::Object(map).to_string()
}

async fn resend_verified_by(runtime: Runtime, script: &str) {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = TestApp::builder()
        .relaying_to(&smtp)
        .webhooks_to_loopback()
        .start()
        .await;
    let (delivered, secret, id) = delivered_webhook(&app, &receiver, "resend", |b| {
        b["type"] == "email.delivered"
    })
    .await;
    let body = String::from_utf8(delivered.body.to_vec()).unwrap();
    let svix = headers(&delivered, &["svix-id", "svix-timestamp", "svix-signature"]);
    let out = run_with(
        &app,
        runtime,
        script,
        &[
            ("MAILGATE_WEBHOOK_BODY", &body),
            ("MAILGATE_WEBHOOK_HEADERS", &svix),
            ("MAILGATE_WEBHOOK_SECRET", &secret),
        ],
    )
    .await;
    let event = &out["event"];
    assert_eq!(event["type"], "email.delivered", "{out}");
    assert_eq!(event["data"]["email_id"], id);
    assert_eq!(event["data"]["to"], json!(["ada@x.test"]));
    assert_eq!(event["data"]["from"], "from@acme.test");
    assert_eq!(event["data"]["subject"], "hooked");
    // Resend's event tags: the metadata entries its send-side tags became.
    assert_eq!(
        event["data"]["tags"],
        json!({"category": "welcome", "user_id": "42"})
    );
    assert_eq!(out["tampered_refused"], true, "{out}");
}

#[tokio::test]
async fn resend_python_verifier_accepts_resend_format_webhooks() {
    resend_verified_by(Runtime::Python, "resend_webhook_verify.py").await;
}

#[tokio::test]
async fn resend_node_verifier_accepts_resend_format_webhooks() {
    resend_verified_by(Runtime::Node, "resend_webhook_verify.cjs").await;
}

async fn sendgrid_verified_by(runtime: Runtime, script: &str) {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = TestApp::builder()
        .relaying_to(&smtp)
        .webhooks_to_loopback()
        .start()
        .await;
    let (delivered, _, id) = delivered_webhook(&app, &receiver, "sendgrid", |b| {
        b[0]["event"] == "delivered"
    })
    .await;
    let key = app.get("/v1/webhooks/signing-key").await;
    assert_eq!(key.status(), 200);
    let key: Value = key.json().await.unwrap();
    let public_key = key["sendgrid_public_key"].as_str().unwrap();
    let body = String::from_utf8(delivered.body.to_vec()).unwrap();
    let twilio = headers(
        &delivered,
        &[
            "x-twilio-email-event-webhook-signature",
            "x-twilio-email-event-webhook-timestamp",
        ],
    );
    let out = run_with(
        &app,
        runtime,
        script,
        &[
            ("MAILGATE_WEBHOOK_BODY", &body),
            ("MAILGATE_WEBHOOK_HEADERS", &twilio),
            ("MAILGATE_SENDGRID_PUBLIC_KEY", public_key),
        ],
    )
    .await;
    assert_eq!(out["verified"], true, "{out}");
    assert_eq!(out["tampered_verified"], false, "{out}");
    let event = &out["events"][0];
    assert_eq!(event["event"], "delivered");
    assert_eq!(event["email"], "ada@x.test");
    assert_eq!(event["sg_message_id"], id);
    // Tags are SendGrid categories; metadata (custom args) are top-level keys, SendGrid's own
    // keys winning a clash.
    assert_eq!(event["category"], json!(["category"]));
    assert_eq!(event["user_id"], "42");
    assert_eq!(event["timestamp"].as_i64().map(|t| t > 0), Some(true));
}

#[tokio::test]
async fn sendgrid_python_verifier_accepts_sendgrid_format_webhooks() {
    sendgrid_verified_by(Runtime::Python, "sendgrid_webhook_verify.py").await;
}

#[tokio::test]
async fn sendgrid_node_verifier_accepts_sendgrid_format_webhooks() {
    sendgrid_verified_by(Runtime::Node, "sendgrid_webhook_verify.cjs").await;
}

#[tokio::test]
async fn postmark_format_sends_records_with_the_urls_basic_credentials() {
    let smtp = TestSmtpServer::start().await;
    smtp.rcpt_reply("gone@acme-mail.io", 550, "5.1.1 no such user", None);
    let receiver = WebhookReceiver::start().await;
    let app = TestApp::builder()
        .relaying_to(&smtp)
        .webhooks_to_loopback()
        .start()
        .await;
    let url = receiver
        .url("/postmark")
        .replacen("http://", "http://hook:s3cret@", 1);
    // Credentials in the URL are for the postmark format only, and never shown.
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/v1/webhooks",
            Some(json!({"url": url})),
        )
        .await;
    assert_eq!(status, 422);
    let (webhook, _) = app
        .create_webhook(&json!({"url": url, "format": "postmark"}))
        .await;
    let shown = app.get_webhook(&webhook).await;
    assert_eq!(shown.format, "postmark");
    assert!(!shown.url.contains("s3cret"), "{shown}");

    let id = app
        .send_ok(
            &json!({"from": "Acme <from@acme.test>", "to": ["ada@x.test", "gone@acme-mail.io"],
                         "subject": "hooked", "text": "hi", "tags": ["welcome"],
                         "metadata": {"user_id": "42"}}),
        )
        .await;
    app.drain().await;
    let got = receiver
        .wait_until(Duration::from_secs(20), |r| r.len() >= 2)
        .await;
    // Only Delivery and Bounce: Postmark has no record for `queued`, which is not sent.
    let mut records: Vec<Value> = got.iter().map(Received::json).collect();
    records.sort_by_key(|r| r["RecordType"].as_str().unwrap_or_default().to_string());
    assert_eq!(records.len(), 2, "{records:#?}");
    for r in &got {
        assert_eq!(r.header("authorization"), "Basic aG9vazpzM2NyZXQ=");
    }
    let (bounce, delivery) = (&records[0], &records[1]);
    assert_eq!(delivery["RecordType"], "Delivery");
    assert_eq!(delivery["MessageID"], id);
    assert_eq!(delivery["Recipient"], "ada@x.test");
    assert_eq!(delivery["Tag"], "welcome");
    assert_eq!(delivery["Metadata"], json!({"user_id": "42"}));
    assert_eq!(delivery["MessageStream"], "outbound");
    assert_eq!(bounce["RecordType"], "Bounce");
    assert_eq!(bounce["Metadata"], json!({"user_id": "42"}));

    let out = run_with(
        &app,
        Runtime::Python,
        "postmark_webhook_check.py",
        &[("MAILGATE_WEBHOOK_BODY", &bounce.to_string())],
    )
    .await;
    assert_eq!(
        out,
        json!({"record_type": "Bounce", "type": "HardBounce", "email": "gone@acme-mail.io",
               "message_id": id, "details": out["details"], "inactive": true})
    );
    assert!(
        out["details"].as_str().unwrap().contains("no such user"),
        "{out}"
    );
}

/// A `mailgun` endpoint gets Mailgun's body (`signature` + `event-data`), which the mailgun
/// SDK's own verifier accepts with the endpoint's secret as the signing key.
#[tokio::test]
async fn mailgun_python_verifier_accepts_mailgun_format_webhooks() {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = TestApp::builder()
        .relaying_to(&smtp)
        .webhooks_to_loopback()
        .start()
        .await;
    let (delivered, secret, id) = delivered_webhook(&app, &receiver, "mailgun", |b| {
        b["event-data"]["event"] == "delivered"
    })
    .await;
    let body = String::from_utf8(delivered.body.to_vec()).unwrap();
    let out = run_with(
        &app,
        Runtime::Python,
        "mailgun_webhook_verify.py",
        &[
            ("MAILGATE_WEBHOOK_BODY", &body),
            ("MAILGATE_WEBHOOK_SECRET", &secret),
        ],
    )
    .await;
    assert_eq!(out["verified"], true, "{out}");
    assert_eq!(out["tampered_refused"], true, "{out}");
    let event = &out["event"];
    assert_eq!(event["event"], "delivered");
    assert_eq!(event["recipient"], "ada@x.test");
    assert_eq!(event["email-id"], id);
    assert_eq!(event["message"]["headers"]["subject"], "hooked");
    assert_eq!(event["tags"], json!(["category"]));
    assert_eq!(
        event["user-variables"],
        json!({"category": "welcome", "user_id": "42"})
    );
    assert_eq!(event["delivery-status"]["code"], 250, "{event}");
}
