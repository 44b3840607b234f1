//! `/metrics`: served by its own listener (`metrics.addr`), never by the API's, and a scrape
//! costs the waiting queue, not the delivered history.

use std::time::Duration;

use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::support::{app::TestApp, eventually};

#[tokio::test]
async fn metrics_answer_on_their_own_listener_and_not_on_the_api() {
    let app = TestApp::builder().without_workers().start().await;
    app.send_ok(
        &json!({"from": "x@example.com", "to": "a@example.com", "subject": "s", "text": "t"}),
    )
    .await;
    // The API listener (the one that faces clients, and the internet once tracking is on)
    // knows no /metrics: project ids and volumes are not for whoever reaches it.
    let on_api = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(on_api.status(), 404);
    let body = on_api.text().await.unwrap();
    assert!(!body.contains("mailgate_"), "{body}");

    // The metrics listener serves them, on loopback as configured.
    let metrics = app.metrics_addr.expect("metrics enabled by default");
    assert!(metrics.ip().is_loopback());
    assert_ne!(metrics, app.addr);
    let text = app.scrape_metrics().await;
    assert!(
        text.contains("mailgate_queue_depth{status=\"queued\"} 1"),
        "{text}"
    );
    assert!(text.contains("mailgate_messages_accepted_total{project="));
    assert!(text.contains("mailgate_database_up 1"), "{text}");
    // Only /metrics there: the API is not served twice.
    let elsewhere = app
        .http
        .get(format!("http://{metrics}/v1/emails"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let app = TestApp::builder()
        .configure(|c| c.metrics.enabled = false)
        .start()
        .await;
    assert_eq!(app.metrics_addr, None);
    assert_eq!(
        app.http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

/// The statistics Postgres keeps of `recipients` (all its day partitions): scans and rows read.
async fn reads(db: &mut PgConnection) -> (i64, i64) {
    sqlx::query_as(
        "SELECT coalesce(sum(seq_scan), 0)::int8 + coalesce(sum(idx_scan), 0)::int8,
                coalesce(sum(seq_tup_read), 0)::int8 + coalesce(sum(idx_tup_fetch), 0)::int8
         FROM pg_stat_user_tables
         WHERE relid IN (SELECT relid FROM pg_partition_tree('recipients') WHERE isleaf)",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

/// Delivered mail stays in `recipients` for `retention.days`; a scrape (every 15 s, from each
/// scraper) must not read all of it. Postgres's own statistics of the table say how many rows
/// the scrape read: each backend reports its counts when it exits, so the app is stopped and
/// its connections closed before they are read.
#[tokio::test]
async fn a_scrape_reads_the_waiting_queue_not_the_delivered_history() {
    const HISTORY: i64 = 20_000;
    let app = TestApp::builder().without_workers().start().await;
    let id = app
        .send_ok(
            &json!({"from": "x@example.com", "to": "a@example.com", "subject": "s", "text": "t"}),
        )
        .await;
    // A month of delivered mail (rows as delivery leaves them), beside the one queued recipient.
    let mut db = PgConnection::connect(&app.database_url).await.unwrap();
    sqlx::query(
        "INSERT INTO recipients (message_id, email, kind, status, attempts, smtp_code)
         SELECT $1, 'r' || g || '@example.com', 'to', 'delivered', 1, 250
         FROM generate_series(1, $2) g",
    )
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .bind(HISTORY)
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query("ANALYZE recipients")
        .execute(&mut db)
        .await
        .unwrap();
    let before = reads(&mut db).await;

    let text = app.scrape_metrics().await;
    assert!(
        text.contains("mailgate_queue_depth{status=\"queued\"} 1"),
        "{text}"
    );

    let pool = app.pool.clone();
    app.stop().await;
    pool.close().await;
    eventually(
        "the app's connections closed (their statistics reported)",
        Duration::from_secs(30),
        async || {
            let (others,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_one(&mut db)
            .await
            .unwrap();
            others == 0
        },
    )
    .await;
    let after = reads(&mut db).await;
    let (scans, rows) = (after.0 - before.0, after.1 - before.1);
    println!("one scrape: {scans} scans of recipients, {rows} rows read of {HISTORY} delivered");
    assert!(scans > 0, "the scrape counted the queue from recipients");
    assert!(
        rows < 100,
        "a scrape read {rows} rows of recipients: the delivered history ({HISTORY} rows) was scanned"
    );
}

/// `/readyz` is anonymous (load balancers probe it without credentials), so its anonymous
/// answer says only whether the instance is ready: no relay hosts, no queue counts (which cost
/// index scans). The operator's token gets the detail.
#[tokio::test]
async fn readiness_details_are_for_the_operator() {
    let app = TestApp::builder().without_workers().start().await;
    app.send_ok(
        &json!({"from": "x@example.com", "to": "a@example.com", "subject": "s", "text": "t"}),
    )
    .await;

    let anonymous = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(anonymous.status(), 200);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
    assert!(body.get("queue").is_none(), "{body}");
    assert!(body.get("delivery").is_none(), "{body}");

    // A project key is not the operator either.
    let keyed: serde_json::Value = app
        .http
        .get(app.url("/readyz"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(keyed.get("queue").is_none(), "{keyed}");

    let token = mailgate::service::gate::mint_operator_token(
        &secrecy::SecretString::from(crate::support::app::JWT_SECRET.to_string()),
        Duration::from_secs(60),
    )
    .unwrap();
    let operator: serde_json::Value = app
        .http
        .get(app.url("/readyz"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(operator["queue"]["queued"], 1, "{operator}");
    assert!(operator["delivery"].is_string(), "{operator}");
}
