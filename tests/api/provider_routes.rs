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

async fn mailgun(app: &TestApp, fields: &[(&str, &str)]) -> (u16, Value) {
    let r = app
        .http
        .post(app.url("/v3/acme.test/messages"))
        .basic_auth("api", Some(&app.key))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    status_and_json(r).await
}

/// Batch sending with a stored template: each message renders the recipient's own values
/// (`recipient.KEY`), in test mode too (checked, nothing stored).
#[tokio::test]
async fn mailgun_batch_renders_each_recipients_values() {
    let app = TestApp::builder().start().await;
    app.put_template(
        "greet",
        &json!({"subject": "Hi {{ recipient.name }}", "text": "{{ greeting }} {{ recipient.name }}"}),
    )
    .await;
    let values = r#"{"a@x.test": {"name": "Ada"}, "b@x.test": {"name": "Bo"}}"#;
    let fields = [
        ("from", "s@acme.test"),
        ("to", "a@x.test, b@x.test"),
        ("template", "greet"),
        ("t:variables", r#"{"greeting": "Hello"}"#),
        ("recipient-variables", values),
    ];
    let mut test = fields.to_vec();
    test.push(("o:testmode", "yes"));
    let (status, body) = mailgun(&app, &test).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(messages_stored(&app).await, 0);
    let (status, body) = mailgun(&app, &fields).await;
    assert_eq!(status, 200, "{body}");
    let page = app.list_emails("").await;
    let mut subjects: Vec<_> = page.data.iter().map(|e| e.subject.clone()).collect();
    subjects.sort();
    assert_eq!(subjects, ["Hi Ada", "Hi Bo"]);
    for email in &page.data {
        let source = app.get_source(&email.id).await;
        assert!(source.contains("Hello"), "{source}");
        // Each message is addressed to its recipient alone.
        assert_eq!(source.matches("@x.test").count(), 1, "{source}");
    }
}

/// Mailgun's bounds on a batch: at most 1000 recipients, and values that are an object of
/// objects; either is a 400 naming the field, and nothing is sent.
#[tokio::test]
async fn mailgun_batch_bounds_are_refused_by_name() {
    let app = TestApp::builder().start().await;
    let to: String = (0..1001)
        .map(|i| format!("r{i}@x.test"))
        .collect::<Vec<_>>()
        .join(",");
    let (status, body) = mailgun(
        &app,
        &[
            ("from", "s@acme.test"),
            ("to", &to),
            ("subject", "s"),
            ("text", "t"),
            ("recipient-variables", "{}"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("1000"), "{body}");
    let (status, body) = mailgun(
        &app,
        &[
            ("from", "s@acme.test"),
            ("to", "a@x.test"),
            ("subject", "s"),
            ("text", "t"),
            ("recipient-variables", r#"{"a@x.test": "Ada"}"#),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("recipient-variables"),
        "{body}"
    );
    assert_eq!(messages_stored(&app).await, 0);
}

async fn resend(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&app.key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    status_and_json(request.send().await.unwrap()).await
}

/// Resend's list refuses what it cannot honour by name (`before`, unknown parameters), and
/// its reschedule refuses a time it cannot read and a message that is not scheduled, each in
/// Resend's error shape.
#[tokio::test]
async fn resend_list_and_reschedule_refuse_by_name() {
    use reqwest::Method;
    let app = TestApp::builder().start().await;
    let (status, body) = resend(&app, Method::GET, "/emails?before=x", None).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("before"),
        "{body}"
    );
    let (status, body) = resend(&app, Method::GET, "/emails?limit=0", None).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = resend(&app, Method::GET, "/emails", None).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"object": "list", "has_more": false, "data": []})
        )
    );

    let id = app
        .send_ok(&json!({"from": "a@acme.test", "to": "b@x.test", "subject": "s", "text": "t",
                         "send_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}))
        .await;
    let path = format!("/emails/{id}");
    let (status, body) = resend(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"scheduled_at": "next week"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("scheduled_at"),
        "{body}"
    );
    let (status, body) = resend(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"scheduled_at": "in 2 hours"})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"object": "email", "id": id})));
    app.cancel_email(&id).await;
    let (status, body) = resend(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"scheduled_at": "in 2 hours"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["name"], "validation_error");
}
