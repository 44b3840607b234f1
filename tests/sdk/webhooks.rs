//! Webhook endpoints in the `resend` format, checked by the Resend SDKs' own verifiers.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    clients::{Runtime, run_with},
    support::{
        app::{TestApp, create_database, relay_to, test_config},
        smtp_server::TestSmtpServer,
        webhook_receiver::WebhookReceiver,
    },
};

/// A mailgate that relays to `smtp` and may call a loopback receiver.
async fn start(smtp: &TestSmtpServer) -> TestApp {
    let db = create_database().await;
    let mut config = test_config(&db);
    relay_to(&mut config, smtp);
    config.webhooks.allow_private_targets = true;
    config.webhooks.poll_interval_ms = 100;
    TestApp::start(config).await
}

/// One send with Resend-style tags, delivered; returns the `email.delivered` webhook as
/// received (body, svix-* headers) and the endpoint's secret.
async fn delivered_webhook(app: &TestApp, receiver: &WebhookReceiver) -> (String, Value, String) {
    let (_, secret) = app
        .create_webhook(&json!({"url": receiver.url("/resend"), "format": "resend"}))
        .await;
    let id = app
        .send_ok(&json!({"from": "Acme <from@acme.test>", "to": "ada@x.test",
                         "subject": "hooked", "text": "hi",
                         "tags": ["category"], "metadata": {"category": "welcome"}}))
        .await;
    app.drain().await;
    let got = receiver
        .wait_until(Duration::from_secs(20), |r| {
            r.iter().any(|r| r.json()["type"] == "email.delivered")
        })
        .await;
    let delivered = got
        .iter()
        .find(|r| r.json()["type"] == "email.delivered")
        .unwrap();
    assert_eq!(delivered.json()["data"]["email_id"], id);
    // Svix's header names, not Standard Webhooks'.
    assert!(delivered.header("webhook-signature").is_empty());
    let headers = json!({
        "svix-id": delivered.header("svix-id"),
        "svix-timestamp": delivered.header("svix-timestamp"),
        "svix-signature": delivered.header("svix-signature"),
    });
    (
        String::from_utf8(delivered.body.to_vec()).unwrap(),
        headers,
        secret,
    )
}

async fn verified_by(runtime: Runtime, script: &str) {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = start(&smtp).await;
    let (body, headers, secret) = delivered_webhook(&app, &receiver).await;
    let out = run_with(
        &app,
        runtime,
        script,
        &[
            ("MAILGATE_WEBHOOK_BODY", &body),
            ("MAILGATE_WEBHOOK_HEADERS", &headers.to_string()),
            ("MAILGATE_WEBHOOK_SECRET", &secret),
        ],
    )
    .await;
    let event = &out["event"];
    assert_eq!(event["type"], "email.delivered", "{out}");
    assert_eq!(event["data"]["to"], json!(["ada@x.test"]));
    assert_eq!(event["data"]["from"], "from@acme.test");
    assert_eq!(event["data"]["subject"], "hooked");
    assert_eq!(event["data"]["tags"], json!({"category": "welcome"}));
    assert_eq!(out["tampered_refused"], true, "{out}");
}

#[tokio::test]
async fn resend_python_verifier_accepts_resend_format_webhooks() {
    verified_by(Runtime::Python, "resend_webhook_verify.py").await;
}

#[tokio::test]
async fn resend_node_verifier_accepts_resend_format_webhooks() {
    verified_by(Runtime::Node, "resend_webhook_verify.cjs").await;
}
