//! `POST /v1/emails/batch`: per-item results in order; one bad item never sinks the others.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{app::spawn_app_relaying_to, smtp_server::TestSmtpServer};

#[tokio::test]
async fn valid_items_go_and_invalid_ones_get_their_own_problem() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    let batch = json!([
        {"from": "a@example.com", "to": "one@example.com", "subject": "1", "text": "t"},
        {"from": "a@example.com", "to": "not an address", "subject": "2", "text": "t"},
        {"from": "a@example.com", "to": ["two@example.com", "three@example.com"], "subject": "3", "text": "t"},
        {"from": "a@example.com", "to": "four@example.com", "subject": 4, "text": "t"}
    ]);
    let r = app.post_batch_raw(&app.key, &batch).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let data = body["data"].as_array().unwrap();
    let statuses: Vec<u64> = data.iter().map(|d| d["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [202, 422, 202, 422]);
    assert_eq!(data[1]["body"]["errors"][0]["field"], "to");
    assert_eq!(data[3]["body"]["errors"][0]["field"], "subject");
    assert_eq!(data[2]["body"]["recipients"].as_array().unwrap().len(), 2);

    smtp.wait_for(3, Duration::from_secs(15)).await;
    for i in [0, 2] {
        let id = data[i]["body"]["id"].as_str().unwrap();
        let email = app
            .wait_for_status(id, &["delivered"], Duration::from_secs(15))
            .await;
        assert_eq!(email.subject, if i == 0 { "1" } else { "3" });
    }
}

#[tokio::test]
async fn batch_size_is_bounded() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    for bad in [json!([]), json!({"not": "a list"})] {
        let r = app.post_batch_raw(&app.key, &bad).await;
        assert_eq!(r.status(), 422, "{bad}");
    }
    let item = json!({"from": "a@example.com", "to": "x@example.com", "subject": "s", "text": "t"});
    let too_many: Vec<Value> = (0..501).map(|_| item.clone()).collect();
    let r = app.post_batch_raw(&app.key, &json!(too_many)).await;
    assert_eq!(r.status(), 422);
    let full: Vec<Value> = (0..500).map(|_| item.clone()).collect();
    let r = app.post_batch_raw(&app.key, &json!(full)).await;
    assert_eq!(r.status(), 200);
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 500);
}

#[tokio::test]
async fn a_batch_costs_one_send_unit_per_item_charged_before_any_is_rendered() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    // A key that may send 5 messages at once, refilled very slowly.
    let created = app
        .create_api_key(&json!({"scopes": ["send", "messages"], "rate_per_sec": 0.01, "burst": 5}))
        .await;
    let key = created["key"].as_str().unwrap().to_string();
    let ok = json!({"from": "a@example.com", "to": "x@example.com", "subject": "s", "text": "t"});
    let bad = json!({"from": "a@example.com", "to": "nobody", "subject": "s", "text": "t"});
    // Two valid and two invalid items: four units, since all four were checked.
    let r = app.post_batch_raw(&key, &json!([ok, bad, ok, bad])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["ratelimit-remaining"], "1");
    // Two more do not fit in the one unit left: the whole batch waits.
    let r = app.post_batch_raw(&key, &json!([ok, ok])).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "rate_limited");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 2, "a refused batch stores nothing");
}
