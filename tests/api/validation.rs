//! Bad input gets a clear 4xx problem naming the field; never a 500.

use serde_json::{Value, json};

use crate::support::app::{TestApp, create_database, spawn_app, test_config};

fn base() -> Value {
    json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"})
}

fn with(field: &str, value: Value) -> Value {
    let mut body = base();
    body[field] = value;
    body
}

async fn problem(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app.post_email_raw(&app.key, &body).await;
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "status {status}"
    );
    (status, response.json().await.unwrap())
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn each_invalid_field_is_named() {
    let app = spawn_app().await;
    let too_many: Vec<String> = (0..51).map(|i| format!("r{i}@example.com")).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "bad address",
            with("to", json!(["ok@example.com", "not-an-address"])),
            "to[1]",
        ),
        ("bad from", with("from", json!("nobody")), "from"),
        (
            "from object without email",
            with("from", json!({"name": "x"})),
            "from",
        ),
        (
            "CR/LF in a header value",
            with(
                "headers",
                json!({"X-Thing": "a\r\nBcc: victim@example.com"}),
            ),
            "headers.X-Thing",
        ),
        (
            "structural header",
            with("headers", json!({"Message-ID": "<x@y>"})),
            "headers.Message-ID",
        ),
        (
            "CR/LF in subject",
            with("subject", json!("hi\nBcc: x@example.com")),
            "subject",
        ),
        ("too many recipients", with("to", json!(too_many)), "to"),
        ("no recipients", with("to", json!([])), "to"),
        ("no body", with("text", json!(null)), "text"),
        (
            "bad base64",
            with(
                "attachments",
                json!([{"filename": "a.txt", "content": "%%%"}]),
            ),
            "attachments[0].content",
        ),
        (
            "bad content type",
            with(
                "attachments",
                json!([{"filename": "a.txt", "content": "aGk=", "content_type": "nonsense"}]),
            ),
            "attachments[0].content_type",
        ),
        ("bad tag", with("tags", json!(["has space"])), "tags[0]"),
        ("unknown relay", with("relay", json!("nowhere")), "relay"),
        ("wrong type", with("tags", json!("not-a-list")), "tags"),
        (
            "wrong nested type",
            with("metadata", json!({"k": 1})),
            "metadata.k",
        ),
        ("unknown field", with("colour", json!("blue")), "colour"),
    ];
    for (what, body, field) in cases {
        let (status, p) = problem(&app, body).await;
        assert_eq!(status, 422, "{what}: {p}");
        assert_eq!(p["code"], "validation_error", "{what}");
        assert_eq!(p["status"], 422);
        assert!(
            fields(&p).contains(&field.to_string()),
            "{what}: expected field {field}, got {p}"
        );
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

#[tokio::test]
async fn malformed_json_media_type_and_size() {
    let db = create_database().await;
    let mut config = test_config(&db);
    config.http.max_body_bytes = 64 * 1024;
    let app = TestApp::builder().config(config).start().await;

    let response = app
        .http
        .post(app.url("/v1/emails"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body("{\"from\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let p: Value = response.json().await.unwrap();
    assert_eq!(p["code"], "malformed_json");

    let response = app
        .http
        .post(app.url("/v1/emails"))
        .bearer_auth(&app.key)
        .header("content-type", "text/plain")
        .body(base().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);

    let (status, p) = problem(&app, with("text", json!("x".repeat(100 * 1024)))).await;
    assert_eq!(status, 413);
    assert_eq!(p["code"], "payload_too_large");
}

#[tokio::test]
async fn a_message_over_the_mime_limit_is_refused() {
    let db = create_database().await;
    let mut config = test_config(&db);
    config.http.max_message_bytes = 4096;
    let app = TestApp::builder().config(config).start().await;
    let (status, p) = problem(&app, with("text", json!("y".repeat(8000)))).await;
    assert_eq!(status, 413, "{p}");
    assert_eq!(p["code"], "payload_too_large");
}
