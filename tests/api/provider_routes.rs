//! Provider routes that SDK users reach for after sending: Postmark's test token, Mailgun's
//! batch sending, Resend's list and reschedule. Driven here over plain HTTP for what the SDK
//! tests (tests/sdk) cannot set up: bounds, refusals and stored state.

use reqwest::Response;
use serde_json::{Value, json};

use crate::support::app::{TestApp, status_and_json};

async fn postmark(app: &TestApp, token: &str, path: &str, body: &Value) -> Response {
    app.http
        .post(app.url(path))
        .header("X-Postmark-Server-Token", token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn messages_stored(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

fn postmark_message() -> Value {
    json!({"From": "a@acme.test", "To": "b@x.test", "Subject": "s", "TextBody": "t"})
}

/// The test token belongs to nobody, so it is bounded per client: past
/// `compat.postmark_test_token_per_ip_per_minute`, Postmark's 429.
#[tokio::test]
async fn postmark_test_token_is_bounded_per_client() {
    let app = TestApp::builder()
        .configure(|c| c.compat.postmark_test_token_per_ip_per_minute = 2)
        .start()
        .await;
    for _ in 0..2 {
        let r = postmark(&app, "POSTMARK_API_TEST", "/email", &postmark_message()).await;
        let (status, body) = status_and_json(r).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["Message"], "Test job accepted");
    }
    let r = postmark(&app, "POSTMARK_API_TEST", "/email", &postmark_message()).await;
    assert!(r.headers().contains_key("retry-after"));
    let (status, body) = status_and_json(r).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["ErrorCode"], 429);
    // A batch is refused whole too, before any message is read.
    let r = postmark(
        &app,
        "POSTMARK_API_TEST",
        "/email/batch",
        &json!([postmark_message()]),
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(messages_stored(&app).await, 0);
    // Keys are not charged by it: a real send still goes.
    let r = postmark(&app, &app.key, "/email", &postmark_message()).await;
    assert_eq!(r.status(), 200);
}

/// With the bound at 0 the test token is one more unknown token.
#[tokio::test]
async fn postmark_test_token_can_be_turned_off() {
    let app = TestApp::builder()
        .configure(|c| c.compat.postmark_test_token_per_ip_per_minute = 0)
        .start()
        .await;
    let r = postmark(&app, "POSTMARK_API_TEST", "/email", &postmark_message()).await;
    let (status, body) = status_and_json(r).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["ErrorCode"], 10);
}

/// What the test token checks is what a send checks: a bad field is Postmark's 422 with
/// `ErrorCode` 300 naming it, and a bad body 402, each counted against the client.
#[tokio::test]
async fn postmark_test_token_refuses_what_a_send_refuses() {
    let app = TestApp::builder().start().await;
    let mut bad = postmark_message();
    bad["From"] = json!("not an address");
    let r = postmark(&app, "POSTMARK_API_TEST", "/email/", &bad).await;
    let (status, body) = status_and_json(r).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["ErrorCode"], 300);
    assert!(body["Message"].as_str().unwrap().contains("From"), "{body}");
    let r = app
        .http
        .post(app.url("/email"))
        .header("X-Postmark-Server-Token", "POSTMARK_API_TEST")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(r).await;
    assert_eq!(
        (status, body["ErrorCode"].clone()),
        (422, json!(402)),
        "{body}"
    );
    let r = postmark(
        &app,
        "POSTMARK_API_TEST",
        "/email/batchWithTemplates",
        &json!({"Messages": [{"From": "a@acme.test", "To": "b@x.test", "TemplateAlias": "any"},
                             {"From": "a@acme.test", "To": "b@x.test"}]}),
    )
    .await;
    let (status, body) = status_and_json(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["ErrorCode"], 0, "{body}");
    assert_eq!(body[1]["ErrorCode"], 300, "{body}");
    assert_eq!(messages_stored(&app).await, 0);
}
