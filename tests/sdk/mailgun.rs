//! The mailgun Python SDK and mailgun.js against mailgate's Mailgun route.

use serde_json::{Value, json};

use crate::{
    clients::{Runtime, run},
    mail::{self, Expected},
    support::{app::spawn_app_relaying_to, smtp_server::TestSmtpServer},
};

/// `<id@acme.test>` → `id`.
fn mailgate_id(queued: &str) -> &str {
    queued
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_end_matches("@acme.test")
}

/// Plain send, attachment, cc/bcc/reply-to/headers/tag/variables, template, a batch send
/// (recipient-variables), bad recipient-variables refused, test mode, an invalid recipient, a 429 and a bad key; every
/// delivery checked. `id` and `fail` read a success's id and a failure's (status, message)
/// from what the SDK returned.
async fn scenario_set(
    runtime: Runtime,
    script: &str,
    id: fn(&Value) -> Option<String>,
    fail: fn(&Value) -> (u64, String),
) -> Value {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    app.put_template("welcome", &mail::welcome_template()).await;
    let out = run(&app, runtime, script).await;

    for scenario in ["plain", "attachment", "extras", "template"] {
        let queued = id(&out[scenario]).unwrap_or_else(|| panic!("{scenario}: {out}"));
        let email = app.get_email(mailgate_id(&queued)).await;
        assert_eq!(email.id, mailgate_id(&queued), "{scenario}");
    }
    let extras = app
        .get_email(mailgate_id(&id(&out["extras"]).unwrap()))
        .await;
    assert_eq!(extras.tags, ["welcome"]);
    assert_eq!(extras.metadata, json!({"user_id": "42"}));
    // Test mode: an id, nothing stored or sent.
    let test = id(&out["test_mode"]).expect("test mode answers an id");
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/emails/{}", mailgate_id(&test)),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // The batch answers one id (the first message's); each recipient got its own message.
    let first = app
        .get_email(mailgate_id(&id(&out["batch"]).expect("batch id")))
        .await;
    assert_eq!(first.subject, "batch 1");
    let (status, message) = fail(&out["recipient_variables"]);
    assert_eq!(status, 400);
    assert!(message.contains("recipient-variables"), "{message}");
    let (status, message) = fail(&out["invalid"]);
    assert_eq!(status, 400);
    assert!(message.contains("to"), "{message}");
    assert_eq!(fail(&out["rate_limited"]).0, 429, "{out}");
    assert_eq!(fail(&out["bad_key"]).0, 401, "{out}");

    // plain, attachment, extras ×3, template, batch ×2, limited.
    mail::check(&smtp, Expected { deliveries: 9 }).await;
    // Each batch message shows its own recipient and values, and no other recipient.
    let two = smtp
        .received()
        .into_iter()
        .find(|m| m.text().contains("Subject: batch 2"))
        .expect("batch 2 delivered");
    assert!(two.text().contains("batched for Two"), "{}", two.text());
    assert!(
        two.text().contains("To: \"B Two\" <b2@x.test>"),
        "{}",
        two.text()
    );
    assert!(!two.text().contains("b1@x.test"), "{}", two.text());
    out
}

#[tokio::test]
async fn mailgun_python_sdk_sends_through_mailgate() {
    let out = scenario_set(
        Runtime::Python,
        "mailgun_client.py",
        |r| {
            (r["status"] == 200)
                .then(|| r["body"]["id"].as_str().map(str::to_string))
                .flatten()
        },
        |r| {
            (
                r["status"].as_u64().unwrap_or(0),
                r["body"]["message"]
                    .as_str()
                    .or(r["body"].as_str())
                    .unwrap_or_default()
                    .to_string(),
            )
        },
    )
    .await;
    assert_eq!(out["plain"]["body"]["message"], "Queued. Thank you.");
    assert_eq!(out["bad_key"]["body"], "Forbidden");
}

#[tokio::test]
async fn mailgun_node_sdk_sends_through_mailgate() {
    let out = scenario_set(
        Runtime::Node,
        "mailgun_client.cjs",
        |r| r["id"].as_str().map(str::to_string),
        |r| {
            (
                r["error"]["status"].as_u64().unwrap_or(0),
                r["error"]["details"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        },
    )
    .await;
    // mailgun.js resolves with the status and the body's fields.
    assert_eq!(out["plain"]["status"], 200);
    assert_eq!(out["plain"]["message"], "Queued. Thank you.");
    // ...and throws its own APIError on failure.
    assert_eq!(out["invalid"]["error"]["type"], "MailgunAPIError", "{out}");
}
