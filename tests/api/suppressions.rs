//! The suppression list: bounces add to it, sends honour it per recipient, people manage it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    api::Accepted,
    app::{expect, spawn_app, spawn_app_relaying_to},
    smtp_server::TestSmtpServer,
};

const WAIT: Duration = Duration::from_secs(20);

fn mail(to: Value) -> Value {
    json!({"from": "app@example.com", "to": to, "subject": "Hello", "text": "Hi"})
}

#[tokio::test]
async fn a_bounce_is_listed_suppresses_later_sends_and_can_be_removed() {
    let smtp = TestSmtpServer::start().await;
    smtp.rcpt_reply("gone@example.com", 550, "5.1.1 no such user", Some(1));
    let app = spawn_app_relaying_to(&smtp).await;

    // A 5xx bounce puts the address on the list, with what the upstream said.
    let id = app.send_ok(&mail(json!("Gone@Example.com"))).await;
    app.wait_for_status(&id, &["bounced"], WAIT).await;
    let list = app.list_suppressions("").await;
    let entry = &list.data[0];
    assert_eq!(entry["email"], "gone@example.com");
    assert_eq!(entry["reason"], "bounce");
    assert!(entry["detail"].as_str().unwrap().contains("no such user"));
    assert!(entry["created_at"].is_string());
    let shown = app.get_suppression("GONE@example.com").await;
    assert_eq!(shown["reason"], "bounce");

    // That recipient is suppressed; the others still go.
    let response = app
        .post_email_raw(
            &app.key,
            &mail(json!(["gone@example.com", "ok@example.com"])),
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: Accepted = response.json().await.unwrap();
    assert_eq!(body.recipients[0].status, "suppressed");
    assert_eq!(body.recipients[1].status, "queued");
    let email = app
        .wait_for_status(&body.id, &["partially_delivered"], WAIT)
        .await;
    assert_eq!(
        email.recipient_statuses(),
        [
            ("gone@example.com".into(), "suppressed".into()),
            ("ok@example.com".into(), "delivered".into())
        ]
    );

    // Every recipient suppressed: still 202, with per-recipient statuses, and nothing relayed.
    let relayed = smtp.received().len();
    let response = app
        .post_email_raw(&app.key, &mail(json!("gone@example.com")))
        .await;
    assert_eq!(response.status(), 202);
    let body: Accepted = response.json().await.unwrap();
    assert_eq!(body.status, "suppressed");
    assert_eq!(body.recipients[0].status, "suppressed");
    app.drain().await;
    assert_eq!(smtp.received().len(), relayed);

    // Removed from the list, the address is mailed again.
    app.remove_suppression("gone@example.com").await;
    let (status, _) = app
        .call(Method::GET, "/v1/suppressions/gone@example.com", None)
        .await;
    assert_eq!(status, 404);
    let id = app.send_ok(&mail(json!("gone@example.com"))).await;
    app.wait_for_status(&id, &["delivered"], WAIT).await;
    assert!(
        smtp.received()
            .iter()
            .any(|m| m.rcpt_to == ["gone@example.com"])
    );
}

#[tokio::test]
async fn suppressions_are_managed_per_project() {
    let app = spawn_app().await;
    let entry = app
        .add_suppression(
            &json!({"email": "Angry@Example.com", "reason": "complaint", "detail": "marked as spam"}),
        )
        .await;
    assert_eq!(entry["email"], "angry@example.com");
    assert_eq!(entry["reason"], "complaint");
    // Adding it again keeps the first entry.
    let again = expect(
        200,
        app.add_suppression_raw(&json!({"email": "angry@example.com"}))
            .await,
    )
    .await;
    assert_eq!(again["reason"], "complaint");
    let manual = app
        .add_suppression(&json!({"email": "quiet@example.com"}))
        .await;
    assert_eq!(manual["reason"], "manual");

    // Listing: filter by reason, pages newest first.
    let complaints = app.list_suppressions("reason=complaint").await;
    assert_eq!(complaints.data.len(), 1);
    let page = app.list_suppressions("limit=1").await;
    assert_eq!(page.data[0]["email"], "quiet@example.com");
    assert!(page.has_more);
    let cursor = page.next_cursor.as_deref().unwrap();
    let rest = app
        .list_suppressions(&format!("limit=1&cursor={cursor}"))
        .await;
    assert_eq!(rest.data[0]["email"], "angry@example.com");
    assert!(!rest.has_more);

    // A suppressed address is reported as such at send time.
    let response = app
        .post_email_raw(&app.key, &mail(json!("quiet@example.com")))
        .await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["recipients"][0]["status"],
        "suppressed"
    );

    // Bad input names the field.
    for (body, field) in [
        (json!({"email": "not an address"}), "email"),
        (
            json!({"email": "a@example.com", "reason": "because"}),
            "reason",
        ),
        (
            json!({"email": "a@example.com", "detail": "x".repeat(1001)}),
            "detail",
        ),
        (json!({"email": "a@example.com", "extra": true}), "extra"),
    ] {
        let (status, problem) = app
            .call(Method::POST, "/v1/suppressions", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    for bad in ["reason=nope", "limit=0", "cursor=%%%"] {
        let (status, _) = app
            .call(Method::GET, &format!("/v1/suppressions?{bad}"), None)
            .await;
        assert_eq!(status, 422, "{bad}");
    }
    for path in [
        "/v1/suppressions/nobody@example.com",
        "/v1/suppressions/a%00b",
    ] {
        let (status, _) = app.call(Method::DELETE, path, None).await;
        assert_eq!(status, 404, "{path}");
        let (status, _) = app.call(Method::GET, path, None).await;
        assert_eq!(status, 404, "{path}");
    }

    // Another project neither sees nor changes this project's list, and is not bound by it.
    let other = app.create_key("other", "suppressions,send", false).await;
    let (_, theirs) = app
        .call_as(&other, Method::GET, "/v1/suppressions", None)
        .await;
    assert!(theirs["data"].as_array().unwrap().is_empty());
    let (status, _) = app
        .call_as(
            &other,
            Method::GET,
            "/v1/suppressions/quiet@example.com",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call_as(
            &other,
            Method::DELETE,
            "/v1/suppressions/quiet@example.com",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let response = app
        .post_email_raw(&other, &mail(json!("quiet@example.com")))
        .await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["recipients"][0]["status"],
        "queued"
    );
    let sender = app.create_key("acme", "send", false).await;
    let (status, problem) = app
        .call_as(&sender, Method::GET, "/v1/suppressions", None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(problem["code"], "forbidden_scope");
}
