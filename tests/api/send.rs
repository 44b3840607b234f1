//! Sending through HTTP: what is accepted, stored and relayed.

use std::time::Duration;

use base64::Engine;
use serde_json::json;

use crate::support::{
    app::{message_id_of, spawn_app, spawn_app_relaying_to},
    smtp_server::TestSmtpServer,
};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_message_is_relayed_once_per_recipient_with_the_exact_mime() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG fake image");
    let pdf = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 fake");
    let id = app
        .send_ok(&json!({
            "from": {"email": "billing@shop.example", "name": "Shop Billing"},
            "to": ["Ada <ada@example.com>"],
            "cc": "cc@example.com",
            "bcc": ["hidden@example.com"],
            "reply_to": "help@shop.example",
            "subject": "Your receipt",
            "text": "Thanks for your order.",
            "html": "<p>Thanks for your order.</p><img src=\"cid:logo\">",
            "headers": {"X-Campaign": "spring"},
            "attachments": [
                {"filename": "logo.png", "content": png, "content_type": "image/png", "content_id": "logo"},
                {"filename": "receipt.pdf", "content": pdf, "content_type": "application/pdf"}
            ],
            "tags": ["receipt"],
            "metadata": {"order": "1234"}
        }))
        .await;

    let email = app.wait_for_status(&id, &["delivered"], WAIT).await;
    let received = smtp.wait_for(3, WAIT).await;
    assert_eq!(received.len(), 3, "one SMTP transaction per recipient");
    let mut rcpts: Vec<String> = received.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["ada@example.com", "cc@example.com", "hidden@example.com"]
    );

    // Every copy is byte-identical to the stored source, so receivers can de-duplicate.
    let source = app.get_source_raw(&app.key, &id).await;
    assert_eq!(source.headers()["content-type"], "message/rfc822");
    let source = source.bytes().await.unwrap();
    for m in &received {
        assert_eq!(
            m.data,
            source.as_ref(),
            "relayed bytes differ from GET /source"
        );
        assert_eq!(m.mail_from, "billing@shop.example");
    }
    let mime = received[0].text();
    assert_eq!(
        message_id_of(&received[0].data),
        Some(email.message_id.clone())
    );
    for needle in [
        "From: \"Shop Billing\" <billing@shop.example>",
        "To: Ada <ada@example.com>",
        "Cc: cc@example.com",
        "Reply-To: help@shop.example",
        "Subject: Your receipt",
        "X-Campaign: spring",
        "multipart/mixed",
        "multipart/alternative",
        "multipart/related",
        "Content-ID: <logo>",
        "filename=\"receipt.pdf\"",
        "Thanks for your order.",
    ] {
        assert!(mime.contains(needle), "{needle:?} missing from:\n{mime}");
    }
    assert!(
        !mime.contains("hidden@example.com"),
        "Bcc leaked into the headers:\n{mime}"
    );

    assert_eq!(email.tags, ["receipt"]);
    assert_eq!(email.metadata, json!({"order": "1234"}));
    for r in &email.recipients {
        assert_eq!(r.status, "delivered");
        assert_eq!(r.smtp_code, Some(250));
        assert_eq!(r.relay_host, Some(smtp.addr.to_string()));
        assert_eq!(r.attempts, 1);
    }
    let events = email.event_types();
    assert_eq!(
        events.iter().filter(|e| e.starts_with("queued:")).count(),
        3
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("delivered:"))
            .count(),
        3
    );
}

#[tokio::test]
async fn accepted_means_committed() {
    let app = spawn_app().await;
    let response = app
        .post_email_raw(
            &app.key,
            &json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    assert_eq!(
        body["recipients"],
        json!([{"email": "b@example.com", "status": "queued"}])
    );
    // Read straight from Postgres with no waiting: the 202 came after the commit.
    let id = uuid::Uuid::parse_str(body["id"].as_str().unwrap()).unwrap();
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM recipients WHERE message_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn test_keys_are_processed_but_never_relayed() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    let test_key = app.create_key("acme", "send,messages", true).await;
    assert!(test_key.starts_with("mg_test_"));
    let response = app
        .post_email_raw(
            &test_key,
            &json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let id = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let email = app.wait_for_status(&id, &["delivered"], WAIT).await;
    assert!(email.sandbox);
    assert_eq!(email.recipients[0].relay_host.as_deref(), Some("sandbox"));
    // A live message sent afterwards arrives; the sandboxed one never does.
    app.send_ok(
        &json!({"from": "a@example.com", "to": "live@example.com", "subject": "s", "text": "t"}),
    )
    .await;
    app.drain().await;
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_to, ["live@example.com"]);
}

#[tokio::test]
async fn without_a_relay_everything_is_sandboxed() {
    let app = spawn_app().await;
    let id = app
        .send_ok(&json!({"from": "a@example.com", "to": ["b@example.com", "c@example.com"], "subject": "s", "text": "t"}))
        .await;
    let email = app.wait_for_status(&id, &["delivered"], WAIT).await;
    assert_eq!(
        email.recipient_statuses(),
        [
            ("b@example.com".into(), "delivered".into()),
            ("c@example.com".into(), "delivered".into())
        ]
    );
    assert!(email.sandbox);
}
