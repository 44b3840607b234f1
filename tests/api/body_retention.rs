//! `retention.body_days`: old bodies go, the message's status and timeline stay.

use std::time::Duration;

use crate::support::{app::spawn_app, eventually};
use serde_json::json;

#[tokio::test]
async fn an_old_body_is_deleted_and_the_api_says_so_while_status_and_events_stay() {
    let app = spawn_app().await;
    let old = app
        .send_ok(&json!({"from": "a@example.com", "to": "b@example.com", "subject": "old", "text": "old body"}))
        .await;
    let new = app
        .send_ok(&json!({"from": "a@example.com", "to": "c@example.com", "subject": "new", "text": "new body"}))
        .await;
    app.wait_for_status(&old, &["delivered"], Duration::from_secs(15))
        .await;
    app.wait_for_status(&new, &["delivered"], Duration::from_secs(15))
        .await;
    let before = app.get_email(&old).await;
    sqlx::query("UPDATE messages SET created_at = now() - interval '10 days' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&old).unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let config = mailgate::config::RetentionConfig {
        body_days: Some(7),
        ..Default::default()
    };
    eventually(
        "the old body deleted",
        Duration::from_secs(10),
        async || {
            mailgate::retention::purge_once(&app.pool, &config)
                .await
                .unwrap();
            app.get_source_raw(&app.key, &old).await.status() == 404
        },
    )
    .await;

    let (status, email) = app
        .call(reqwest::Method::GET, &format!("/v1/emails/{old}"), None)
        .await;
    assert_eq!(status, 200);
    assert!(email["body_purged_at"].is_string(), "{email:#}");
    assert_eq!(email["status"], "delivered");
    assert_eq!(
        email["events"].as_array().unwrap().len(),
        before.events.len(),
        "the timeline stays"
    );
    let gone = app.get_source_raw(&app.key, &old).await;
    assert!(gone.text().await.unwrap().contains("retention.body_days"));

    // Within body_days: untouched.
    let (_, kept) = app
        .call(reqwest::Method::GET, &format!("/v1/emails/{new}"), None)
        .await;
    assert!(kept["body_purged_at"].is_null(), "{kept:#}");
    assert!(app.get_source(&new).await.contains("new body"));

    // Gone from the database, not only from the answers.
    let stored: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT mime FROM messages WHERE id = $1 AND length(mime) > 0")
            .bind(uuid::Uuid::parse_str(&old).unwrap())
            .fetch_optional(&app.pool)
            .await
            .unwrap();
    assert!(stored.is_none(), "the MIME is cleared in the database");
}
