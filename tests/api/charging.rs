//! Work is charged before it is done, and bounded per request: every route that makes
//! several messages (the native batch, Resend's and Postmark's batches, SendGrid's
//! personalizations) charges one `send` unit per message before it renders or scans any of
//! them, in sandbox and test modes too; and the bytes one request renders are bounded by
//! `http.max_request_bytes_rendered`.
//!
//! "Nothing was rendered" is seen from outside through a template that cannot render (its
//! variable is missing): a request that rendered it would be refused for that (422, or
//! SendGrid's 400); a request refused for its charge first is a 429.

use base64::Engine;
use mailgate::domain::api_key::KeyLimits;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::app::{TestApp, status_and_json};

/// Renders only with `name`: every test request leaves it out.
fn unrenderable() -> Value {
    json!({"subject": "Hi {{ name }}", "text": "Hello {{ name }}"})
}

async fn app_with_template() -> TestApp {
    let app = TestApp::builder().start().await;
    app.put_template("hello", &unrenderable()).await;
    app
}

/// A key that may send `burst` messages at once, then hardly ever again.
async fn key_with_burst(app: &TestApp, burst: u32) -> String {
    app.create_limited_key(KeyLimits {
        rate_per_sec: Some(0.001),
        burst: Some(burst),
        daily_quota: None,
    })
    .await
    .0
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

/// A refusal for the rate limit, with its headers, before anything was rendered.
async fn assert_rate_limited(r: Response) -> Value {
    assert_eq!(r.status(), 429, "{:?}", r.headers());
    // One unit is left, and the request asked for more.
    assert_eq!(header(&r, "ratelimit-remaining"), "1");
    assert!(r.headers().contains_key("ratelimit-limit"));
    assert!(r.headers().contains_key("retry-after"));
    status_and_json(r).await.1
}

async fn messages_stored(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn post(app: &TestApp, key: &str, path: &str, body: &Value) -> Response {
    app.request_as(key, Method::POST, path)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn postmark(app: &TestApp, key: &str, path: &str, body: &Value) -> Response {
    app.http
        .post(app.url(path))
        .header("X-Postmark-Server-Token", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn native_batch_is_charged_per_item_before_rendering() {
    let app = app_with_template().await;
    let key = key_with_burst(&app, 3).await;
    let item = json!({"from": "a@example.com", "to": "b@example.com", "template": "hello", "variables": {}});
    // Two items rendered and refused: charged two units all the same.
    let r = app.post_batch_raw(&key, &json!([item, item])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "ratelimit-remaining"), "1");
    let (_, body) = status_and_json(r).await;
    assert_eq!(body["data"][0]["status"], 422, "{body}");
    assert_eq!(body["data"][0]["body"]["code"], "template_render_error");
    // Two more do not fit: refused before either is rendered.
    let problem = assert_rate_limited(app.post_batch_raw(&key, &json!([item, item])).await).await;
    assert_eq!(problem["code"], "rate_limited");
    assert_eq!(messages_stored(&app).await, 0);
}

#[tokio::test]
async fn resend_batch_is_charged_per_item_before_rendering() {
    let app = app_with_template().await;
    let key = key_with_burst(&app, 3).await;
    let item = json!({"from": "a@example.com", "to": "b@example.com", "template": {"id": "hello", "variables": {}}});
    // Strict validation refuses the batch for its first item, once it is charged.
    let r = post(&app, &key, "/emails/batch", &json!([item, item])).await;
    assert_eq!(r.status(), 422);
    assert_eq!(header(&r, "ratelimit-remaining"), "1");
    // Permissive or strict, two more are refused before either is rendered.
    for mode in ["strict", "permissive"] {
        let r = app
            .request_as(&key, Method::POST, "/emails/batch")
            .header("x-batch-validation", mode)
            .json(&json!([item, item]))
            .send()
            .await
            .unwrap();
        let body = assert_rate_limited(r).await;
        assert_eq!(body["name"], "rate_limit_exceeded", "{body}");
    }
    assert_eq!(messages_stored(&app).await, 0);
}

#[tokio::test]
async fn postmark_batches_are_charged_per_message_before_rendering() {
    let app = app_with_template().await;
    let key = key_with_burst(&app, 3).await;
    let item = json!({"From": "a@example.com", "To": "b@example.com", "TemplateAlias": "hello", "TemplateModel": {}});
    let path = "/email/batchWithTemplates";
    let r = postmark(&app, &key, path, &json!({"Messages": [item, item]})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "ratelimit-remaining"), "1");
    let (_, results) = status_and_json(r).await;
    assert_ne!(results[0]["ErrorCode"], 0, "{results}");
    let r = postmark(&app, &key, path, &json!({"Messages": [item, item]})).await;
    let body = assert_rate_limited(r).await;
    assert_eq!(body["ErrorCode"], 429, "{body}");
    // `/email/batch` the same way.
    let plain =
        json!({"From": "a@example.com", "To": "b@example.com", "Subject": "s", "TextBody": "t"});
    let r = postmark(&app, &key, "/email/batch", &json!([plain, plain])).await;
    assert_rate_limited(r).await;
    assert_eq!(messages_stored(&app).await, 0);
}

fn sendgrid_mail(personalizations: usize, sandbox: bool) -> Value {
    let to: Vec<Value> = (0..personalizations)
        .map(|i| json!({"to": [{"email": format!("r{i}@example.org")}]}))
        .collect();
    json!({
        "from": {"email": "a@example.com"},
        "subject": "s",
        "personalizations": to,
        "content": [{"type": "text/plain", "value": "t"}],
        "mail_settings": {"sandbox_mode": {"enable": sandbox}}
    })
}

#[tokio::test]
async fn sendgrid_charges_each_personalization_before_rendering() {
    let app = app_with_template().await;
    let key = key_with_burst(&app, 3).await;
    let mut mail = sendgrid_mail(2, false);
    mail["template_id"] = json!("hello");
    mail.as_object_mut().unwrap().remove("content");
    // Refused for its first personalization, which did not render: charged two units.
    let r = post(&app, &key, "/v3/mail/send", &mail).await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "ratelimit-remaining"), "1");
    // Two more personalizations: refused before either is rendered.
    let r = post(&app, &key, "/v3/mail/send", &mail).await;
    let body = assert_rate_limited(r).await;
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    assert_eq!(messages_stored(&app).await, 0);
}

#[tokio::test]
async fn sendgrid_sandbox_mode_is_charged_like_a_send() {
    let app = TestApp::builder().start().await;
    let key = key_with_burst(&app, 3).await;
    let r = post(&app, &key, "/v3/mail/send", &sendgrid_mail(2, true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "ratelimit-remaining"), "1");
    // The checking costs what sending would: the next two are refused.
    let r = post(&app, &key, "/v3/mail/send", &sendgrid_mail(2, true)).await;
    assert_rate_limited(r).await;
    let r = post(&app, &key, "/v3/mail/send", &sendgrid_mail(2, false)).await;
    assert_rate_limited(r).await;
    assert_eq!(messages_stored(&app).await, 0);
}

#[tokio::test]
async fn mailgun_test_mode_is_charged_like_a_send() {
    // A Mailgun send without recipient-variables is one message, charged before it is
    // rendered: a test-mode send included.
    let app = app_with_template().await;
    let key = key_with_burst(&app, 1).await;
    let form = |template: bool| {
        let mut fields = vec![
            ("from", "a@example.com"),
            ("to", "b@example.com"),
            ("o:testmode", "yes"),
        ];
        if template {
            fields.push(("template", "hello"));
        } else {
            fields.extend([("subject", "s"), ("text", "t")]);
        }
        fields
    };
    let send = |fields: Vec<(&'static str, &'static str)>| {
        app.http
            .post(app.url("/v3/example.com/messages"))
            .basic_auth("api", Some(&key))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(urlencoded(&fields))
            .send()
    };
    let r = send(form(false)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "ratelimit-remaining"), "0");
    // A template that cannot render is not rendered: the limit answers first.
    let r = send(form(true)).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(messages_stored(&app).await, 0);
}

#[tokio::test]
async fn mailgun_batch_is_charged_per_message_before_rendering() {
    let app = app_with_template().await;
    let key = key_with_burst(&app, 3).await;
    let fields = [
        ("from", "a@example.com"),
        ("to", "b1@example.com"),
        ("to", "b2@example.com"),
        ("template", "hello"),
        ("recipient-variables", r#"{"b1@example.com": {"n": 1}}"#),
    ];
    let send = || {
        app.http
            .post(app.url("/v3/example.com/messages"))
            .basic_auth("api", Some(&key))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(urlencoded(&fields))
            .send()
    };
    // Two messages, the first rendered and refused (no `name`): charged two units.
    let r = send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "ratelimit-remaining"), "1");
    // Two more do not fit: refused before either is rendered.
    let r = send().await.unwrap();
    assert_rate_limited(r).await;
    assert_eq!(messages_stored(&app).await, 0);
}

/// A form as browsers and mailgun.js encode it.
fn urlencoded(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A mailgate whose requests may render 1 MiB in all, messages at most 512 KiB.
async fn app_bounded() -> TestApp {
    TestApp::builder()
        .configure(|c| {
            c.http.max_request_bytes_rendered = 1 << 20;
            c.http.max_message_bytes = 512 << 10;
        })
        .start()
        .await
}

fn assert_names_the_bound(detail: &str) {
    assert!(
        detail.contains("http.max_request_bytes_rendered") && detail.contains("1048576"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_batch_that_renders_past_the_request_bound_is_refused_naming_it() {
    let app = app_bounded().await;
    // About 200 KB of MIME each: five fit in 1 MiB, six do not.
    let item = json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "word ".repeat(40_000)});
    let r = app
        .post_batch_raw(&app.key, &json!(vec![item.clone(); 6]))
        .await;
    let (status, problem) = status_and_json(r).await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(problem["code"], "payload_too_large");
    assert_names_the_bound(problem["detail"].as_str().unwrap());
    assert_eq!(messages_stored(&app).await, 0, "nothing of it is stored");

    let r = app
        .post_batch_raw(&app.key, &json!(vec![item.clone(); 4]))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(messages_stored(&app).await, 4);

    // Over the rate limit as well: the charge refuses it before anything is rendered.
    let key = key_with_burst(&app, 1).await;
    let r = app
        .post_batch_raw(&key, &json!(vec![item.clone(); 2]))
        .await;
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn sendgrid_personalizations_sharing_an_attachment_are_bounded_in_sandbox_too() {
    let app = app_bounded().await;
    // 300 KB of binary file, base64 in each message: three personalizations render about
    // 1.2 MB.
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    let file = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mail = |n: usize, sandbox: bool| {
        let mut mail = sendgrid_mail(n, sandbox);
        mail["attachments"] = json!([{"content": file, "filename": "report.bin", "type": "application/octet-stream"}]);
        mail
    };
    for sandbox in [true, false] {
        let r = post(&app, &app.key, "/v3/mail/send", &mail(3, sandbox)).await;
        let (status, body) = status_and_json(r).await;
        assert_eq!(status, 413, "sandbox {sandbox}: {body}");
        assert_names_the_bound(body["errors"][0]["message"].as_str().unwrap());
    }
    assert_eq!(messages_stored(&app).await, 0);
    let r = post(&app, &app.key, "/v3/mail/send", &mail(2, true)).await;
    assert_eq!(r.status(), 200);
    let r = post(&app, &app.key, "/v3/mail/send", &mail(2, false)).await;
    assert_eq!(r.status(), 202);
    assert_eq!(messages_stored(&app).await, 2);
}
