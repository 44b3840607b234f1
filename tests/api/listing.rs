//! `GET /v1/emails`: filters and cursor pagination; retention.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app};

async fn list(app: &TestApp, query: &str) -> (u16, Value) {
    let r = app
        .http
        .get(app.url(&format!("/v1/emails?{query}")))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn subjects(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn pages_are_newest_first_and_stable_while_mail_arrives() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.send_ok(&json!({"from": "a@example.com", "to": format!("r{i}@example.com"), "subject": format!("m{i}"),
                            "text": "t", "tags": if i % 2 == 0 { json!(["even"]) } else { json!(["odd"]) }}))
            .await;
    }
    let (status, page1) = list(&app, "limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(subjects(&page1), ["m4", "m3"]);
    assert_eq!(page1["has_more"], true);
    // New mail arriving between pages does not shift the next page.
    app.send_ok(
        &json!({"from": "a@example.com", "to": "late@example.com", "subject": "late", "text": "t"}),
    )
    .await;
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = list(&app, &format!("limit=2&cursor={cursor}")).await;
    assert_eq!(subjects(&page2), ["m2", "m1"]);
    let (_, page3) = list(
        &app,
        &format!("limit=2&cursor={}", page2["next_cursor"].as_str().unwrap()),
    )
    .await;
    assert_eq!(subjects(&page3), ["m0"]);
    assert_eq!(page3["has_more"], false);
    assert!(page3["next_cursor"].is_null());

    let (_, even) = list(&app, "tag=even").await;
    assert_eq!(subjects(&even), ["m4", "m2", "m0"]);
    let (_, to) = list(&app, "recipient=R3@example.com").await;
    assert_eq!(subjects(&to), ["m3"]);
    let (_, from) = list(&app, "from=nobody@example.com").await;
    assert!(subjects(&from).is_empty());
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (_, since) = list(&app, &format!("since={}", urlencode(&future))).await;
    assert!(subjects(&since).is_empty());

    // Another project sees none of it.
    let other = app.create_key("globex", "messages", false).await;
    let r: Value = app
        .http
        .get(app.url("/v1/emails"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["data"].as_array().unwrap().is_empty());
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn bad_filters_are_named() {
    let app = spawn_app().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("status=lost", "status"),
        ("cursor=%%%", "cursor"),
        ("since=yesterday", "since"),
    ] {
        let (status, p) = list(&app, query).await;
        assert_eq!(status, 422, "{query}: {p}");
        assert_eq!(p["errors"][0]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn retention_deletes_old_finished_messages_only() {
    let app = spawn_app().await;
    let old = app
        .send_ok(
            &json!({"from": "a@example.com", "to": "b@example.com", "subject": "old", "text": "t"}),
        )
        .await;
    app.wait_for_status(&old, &["delivered"], Duration::from_secs(15))
        .await;
    let queued = app
        .send_ok(&json!({"from": "a@example.com", "to": "c@example.com", "subject": "waiting", "text": "t",
                         "send_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()}))
        .await;
    let fresh = app
        .send_ok(
            &json!({"from": "a@example.com", "to": "d@example.com", "subject": "new", "text": "t"}),
        )
        .await;
    sqlx::query("UPDATE messages SET created_at = now() - interval '40 days' WHERE id = ANY($1)")
        .bind(vec![
            uuid::Uuid::parse_str(&old).unwrap(),
            uuid::Uuid::parse_str(&queued).unwrap(),
        ])
        .execute(&app.pool)
        .await
        .unwrap();
    let config = mailgate::config::RetentionConfig {
        batch: 1,
        ..Default::default()
    };
    let status_of = |id: String| {
        let app = &app;
        async move { app.get_email_as(&app.key, &id).await.status().as_u16() }
    };
    // The app's own retention pass may be working on the same rows (SKIP LOCKED), so the
    // count of one pass proves nothing; the old message must be gone soon after.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        mailgate::retention::purge_once(&app.pool, &config)
            .await
            .unwrap();
        if status_of(old.clone()).await == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old message was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status_of(queued).await,
        200,
        "a message still waiting is never deleted"
    );
    assert_eq!(status_of(fresh).await, 200);
}
