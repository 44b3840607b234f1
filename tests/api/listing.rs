//! `GET /v1/emails`: filters and cursor pagination; retention.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::{
    api::{EmailSummary, Page},
    app::{expect, spawn_app, typed},
    eventually,
};

fn subjects(page: &Page<EmailSummary>) -> Vec<&str> {
    page.data.iter().map(|m| m.subject.as_str()).collect()
}

#[tokio::test]
async fn pages_are_newest_first_and_stable_while_mail_arrives() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.send_ok(&json!({"from": "a@example.com", "to": format!("r{i}@example.com"), "subject": format!("m{i}"),
                            "text": "t", "tags": if i % 2 == 0 { json!(["even"]) } else { json!(["odd"]) }}))
            .await;
    }
    let page1 = app.list_emails("limit=2").await;
    assert_eq!(subjects(&page1), ["m4", "m3"]);
    assert!(page1.has_more);
    // New mail arriving between pages does not shift the next page.
    app.send_ok(
        &json!({"from": "a@example.com", "to": "late@example.com", "subject": "late", "text": "t"}),
    )
    .await;
    let cursor = page1.next_cursor.as_deref().unwrap();
    let page2 = app.list_emails(&format!("limit=2&cursor={cursor}")).await;
    assert_eq!(subjects(&page2), ["m2", "m1"]);
    let page3 = app
        .list_emails(&format!(
            "limit=2&cursor={}",
            page2.next_cursor.as_deref().unwrap()
        ))
        .await;
    assert_eq!(subjects(&page3), ["m0"]);
    assert!(!page3.has_more);
    assert!(page3.next_cursor.is_none());

    let even = app.list_emails("tag=even").await;
    assert_eq!(subjects(&even), ["m4", "m2", "m0"]);
    let to = app.list_emails("recipient=R3@example.com").await;
    assert_eq!(subjects(&to), ["m3"]);
    let from = app.list_emails("from=nobody@example.com").await;
    assert!(subjects(&from).is_empty());
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let since = app
        .list_emails(&format!("since={}", urlencode(&future)))
        .await;
    assert!(subjects(&since).is_empty());
    // A window around now holds all six; one that ended an hour ago none. Each filter also
    // bounds the id (its day partitions), combined with the others and the cursor.
    let ago = |h: i64| urlencode(&(chrono::Utc::now() - chrono::Duration::hours(h)).to_rfc3339());
    let window = app
        .list_emails(&format!("since={}&until={}", ago(1), ago(-1)))
        .await;
    assert_eq!(subjects(&window), ["late", "m4", "m3", "m2", "m1", "m0"]);
    // Times no v7 id can hold (before 1970, far ahead) still filter, and bound no id.
    let wide = app
        .list_emails("since=1969-06-01T00:00:00Z&until=9999-12-31T00:00:00Z&limit=2")
        .await;
    assert_eq!(subjects(&wide), ["late", "m4"]);
    let past = app
        .list_emails(&format!("recipient=r1@example.com&until={}", ago(1)))
        .await;
    assert!(subjects(&past).is_empty());
    let r1 = app
        .list_emails(&format!(
            "recipient=r1@example.com&since={}&until={}&cursor={cursor}",
            ago(1),
            ago(-1)
        ))
        .await;
    assert_eq!(subjects(&r1), ["m1"]);
    let odd_before = app.list_emails(&format!("tag=odd&cursor={cursor}")).await;
    assert_eq!(subjects(&odd_before), ["m1"]);

    // Another project sees none of it.
    let other = app.create_key("globex", "messages", false).await;
    let r: Page<EmailSummary> = typed(
        expect(
            200,
            app.request_as(&other, Method::GET, "/v1/emails")
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    assert!(r.data.is_empty());
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
        let p = expect(422, app.get(&format!("/v1/emails?{query}")).await).await;
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
        async move { app.get_email_raw(&app.key, &id).await.status().as_u16() }
    };
    // The app's own retention pass may be working on the same rows (SKIP LOCKED), so the
    // count of one pass proves nothing; the old message must be gone soon after.
    eventually(
        "the old message deleted",
        Duration::from_secs(10),
        async || {
            mailgate::retention::purge_once(&app.pool, &config)
                .await
                .unwrap();
            status_of(old.clone()).await == 404
        },
    )
    .await;
    assert_eq!(
        status_of(queued).await,
        200,
        "a message still waiting is never deleted"
    );
    assert_eq!(status_of(fresh).await, 200);
}
