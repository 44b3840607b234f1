//! postmarker, postmark-python and the postmark Node SDK against mailgate's Postmark routes.

use serde_json::{Value, json};

use crate::{
    clients::{Runtime, run},
    mail::{self, Expected},
    support::{app::spawn_app_relaying_to, smtp_server::TestSmtpServer},
};

/// Plain send, attachment, cc/bcc/reply-to/headers/tag/metadata, template, a batch with one
/// bad message, an invalid recipient, a 429 and a bad key; every delivery checked.
async fn scenario_set(runtime: Runtime, script: &str) -> Value {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    app.put_template("welcome", &mail::welcome_template()).await;
    let out = run(&app, runtime, script).await;

    // `MessageID` is mailgate's id.
    for scenario in ["plain", "attachment", "extras", "template"] {
        let id = out[scenario].as_str().unwrap();
        assert_eq!(app.get_email(id).await.id, id, "{scenario}");
    }
    // A batch answers per message: the bad one has ErrorCode 300 and no id.
    let codes: Vec<_> = out["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].clone())
        .collect();
    assert_eq!(codes, [json!(0), json!(0), json!(300)], "{out}");
    assert_eq!(out["batch"][2]["id"], "");
    let extras = app.get_email(out["extras"].as_str().unwrap()).await;
    assert_eq!(extras.tags, ["welcome"]);
    assert_eq!(extras.metadata, json!({"user_id": "42"}));

    // plain, attachment, extras ×3, template, batch ×2, limited.
    mail::check(&smtp, Expected { deliveries: 9 }).await;
    out
}

#[tokio::test]
async fn postmarker_sends_through_mailgate() {
    let out = scenario_set(Runtime::Python, "postmarker_client.py").await;
    // postmarker raises ClientError carrying Postmark's ErrorCode.
    assert_eq!(out["invalid"], json!({"class": "ClientError", "code": 300}));
    assert_eq!(
        out["rate_limited"],
        json!({"class": "ClientError", "code": 429})
    );
    assert_eq!(out["bad_key"], json!({"class": "ClientError", "code": 10}));
}

#[tokio::test]
async fn postmark_python_sdk_sends_through_mailgate() {
    let out = scenario_set(Runtime::Python, "postmark_python_client.py").await;
    assert_eq!(
        out["invalid"],
        json!({"class": "ValidationException", "code": 300})
    );
    assert_eq!(out["rate_limited"]["class"], "RateLimitException", "{out}");
    assert_eq!(
        out["bad_key"],
        json!({"class": "InvalidAPIKeyException", "code": 10})
    );
}

#[tokio::test]
async fn postmark_node_sdk_sends_through_mailgate() {
    let out = scenario_set(Runtime::Node, "postmark_client.cjs").await;
    assert_eq!(
        out["invalid"],
        json!({"class": "InvalidEmailRequestError", "code": 300, "status": 422})
    );
    assert_eq!(
        out["rate_limited"]["class"], "RateLimitExceededError",
        "{out}"
    );
    assert_eq!(out["rate_limited"]["status"], 429);
    assert_eq!(
        out["bad_key"],
        json!({"class": "InvalidAPIKeyError", "code": 10, "status": 401})
    );
}

/// Postmark's test token, as postmarker and postmark-python send it: every send route
/// answers as Postmark does ("Test job accepted"), a bad message is refused as a real send
/// would be, and nothing is stored or reaches the relay.
#[tokio::test]
async fn the_test_token_is_checked_and_nothing_is_sent() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    let out = run(&app, Runtime::Python, "postmark_test_token.py").await;
    assert_eq!(out["postmarker_send"]["code"], 0, "{out}");
    assert_eq!(out["postmarker_send"]["message"], "Test job accepted");
    assert_eq!(out["postmarker_send"]["to"], "ada@x.test");
    assert!(
        uuid::Uuid::parse_str(out["postmarker_send"]["id"].as_str().unwrap()).is_ok(),
        "{out}"
    );
    assert_eq!(
        out["postmarker_template"],
        json!({"code": 0, "message": "Test job accepted"})
    );
    assert_eq!(out["postmarker_batch"], json!([0, 300]));
    assert_eq!(out["postmarker_invalid"], 300);
    assert_eq!(
        out["official_send"],
        json!({"code": 0, "message": "Test job accepted"})
    );
    assert_eq!(
        out["official_invalid"],
        json!({"class": "ValidationException", "code": 300})
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    // A real send after them is the first message the relay sees.
    app.send_ok(
        &json!({"from": "a@acme.test", "to": "after@x.test", "subject": "after", "text": "x"}),
    )
    .await;
    let first = smtp.wait_for(1, std::time::Duration::from_secs(10)).await;
    assert_eq!(first[0].rcpt_to, ["after@x.test"]);
}
