//! `Idempotency-Key`: retries are safe.

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app};

async fn send(app: &TestApp, key: &str, body: &Value) -> (u16, Value, bool) {
    let r = app
        .http
        .post(app.url("/v1/emails"))
        .bearer_auth(&app.key)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = r.headers().contains_key("idempotent-replayed");
    (r.status().as_u16(), r.json().await.unwrap(), replayed)
}

#[tokio::test]
async fn the_same_key_and_body_replay_the_first_answer() {
    let app = spawn_app().await;
    let body =
        json!({"from": "a@example.com", "to": "b@example.com", "subject": "once", "text": "t"});
    let (s1, first, replayed1) = send(&app, "order-42", &body).await;
    let (s2, second, replayed2) = send(&app, "order-42", &body).await;
    assert_eq!((s1, s2), (202, 202));
    assert!(!replayed1 && replayed2);
    assert_eq!(
        first["id"], second["id"],
        "a retry must not create a second message"
    );
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);

    // Same key, different body: refused.
    let other =
        json!({"from": "a@example.com", "to": "b@example.com", "subject": "twice", "text": "t"});
    let (s3, problem, _) = send(&app, "order-42", &other).await;
    assert_eq!(s3, 409);
    assert_eq!(problem["code"], "idempotency_conflict");

    // Keys are per project: another project may use the same key.
    let other_key = app.create_key("globex", "send", false).await;
    let r = app
        .http
        .post(app.url("/v1/emails"))
        .bearer_auth(&other_key)
        .header("Idempotency-Key", "order-42")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn validation_errors_are_replayed_too_and_bad_keys_refused() {
    let app = spawn_app().await;
    let bad = json!({"from": "nope", "to": "b@example.com", "subject": "s", "text": "t"});
    let (s1, p1, _) = send(&app, "k1", &bad).await;
    let (s2, p2, replayed) = send(&app, "k1", &bad).await;
    assert_eq!((s1, s2), (422, 422));
    assert!(replayed);
    assert_eq!(p1, p2);

    let good = json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"});
    let (status, problem, _) = send(&app, &"x".repeat(256), &good).await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
}

#[tokio::test]
async fn a_duplicate_while_the_first_is_running_is_a_conflict() {
    let app = spawn_app().await;
    let project: (uuid::Uuid,) = sqlx::query_as("SELECT id FROM projects WHERE name = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let body = json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"});
    // The first request has claimed the key and is still working on it.
    let hash = {
        use sha2::Digest;
        sha2::Sha256::new()
            .chain_update(b"POST /v1/emails")
            .chain_update([0])
            .chain_update(serde_json::to_vec(&body).unwrap())
            .finalize()
            .to_vec()
    };
    sqlx::query(
        "INSERT INTO idempotency_keys (project_id, key, request_hash) VALUES ($1, 'busy', $2)",
    )
    .bind(project.0)
    .bind(&hash)
    .execute(&app.pool)
    .await
    .unwrap();
    let (status, problem, _) = send(&app, "busy", &body).await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("still being processed")
    );
}
