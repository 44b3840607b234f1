//! Several mailgate processes on one database; crashes and graceful stops.

use std::{collections::HashMap, time::Duration};

use serde_json::json;

use crate::support::{
    app::{TestApp, create_database, message_id_of, relay_to, test_config},
    smtp_server::TestSmtpServer,
};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn two_instances_relay_each_message_once() {
    let smtp = TestSmtpServer::start().await;
    let db = create_database().await;
    let mut config = test_config(&db);
    relay_to(&mut config, &smtp);
    let a = TestApp::builder().config(config.clone()).start().await;
    let b = a.another_instance(config).await;
    let mut ids = Vec::new();
    for i in 0..120 {
        let app = if i % 2 == 0 { &a } else { &b };
        ids.push(
            app.send_ok(&json!({"from": "a@example.com", "to": format!("r{i}@example.com"), "subject": "s", "text": "t"}))
                .await,
        );
    }
    let received = smtp.wait_for(120, WAIT).await;
    for id in &ids {
        a.wait_for_status(id, &["delivered"], WAIT).await;
    }
    // Nothing left anywhere that could still send a duplicate.
    a.drain().await;
    let received_now = smtp.received();
    assert_eq!(
        received_now.len(),
        120,
        "duplicates or losses: {} received",
        received_now.len()
    );
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for m in &received {
        *per_id.entry(message_id_of(&m.data).unwrap()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 120);
    assert!(per_id.values().all(|&n| n == 1));
}

/// A worker relaying one message (to `to`) to a server that holds its DATA reply, killed
/// while it waits; its connection dies with it, as it would with the process. Returns the
/// message's id.
async fn killed_mid_delivery(config: &mailgate::Config, to: &str) -> String {
    let black_hole = TestSmtpServer::start().await;
    black_hole.set_data_delay(Duration::from_secs(60));
    let mut config = config.clone();
    relay_to(&mut config, &black_hole);
    let doomed = TestApp::builder().config(config).start().await;
    let id = doomed
        .send_ok(&json!({"from": "a@example.com", "to": to, "subject": "s", "text": "t"}))
        .await;
    // The message is out, and the worker is waiting for the reply to DATA.
    black_hole.wait_for_data(1, WAIT).await;
    assert_eq!(doomed.get_email(&id).await.recipients[0].status, "sending");
    doomed.kill().await;
    black_hole.stop().await;
    id
}

#[tokio::test]
async fn a_worker_killed_mid_delivery_is_replaced_after_its_lease_and_the_mail_arrives_once() {
    let db = create_database().await;
    let mut config = test_config(&db);
    config.delivery.smtp_timeout_secs = 30;
    config.delivery.runner.lease_secs = 3;
    let id = killed_mid_delivery(&config, "once@example.com").await;

    let smtp = TestSmtpServer::start().await;
    let mut survivor_config = config;
    relay_to(&mut survivor_config, &smtp);
    survivor_config.delivery.smtp_timeout_secs = 2;
    survivor_config.delivery.runner.lease_secs = 10;
    let survivor = TestApp::builder().config(survivor_config).start().await;
    let email = survivor.wait_for_status(&id, &["delivered"], WAIT).await;
    let types: Vec<&str> = email.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(types, ["queued", "deferred", "delivered"], "{email:#}");
    assert!(
        email.events[1]
            .detail
            .as_deref()
            .unwrap()
            .contains("lease expired")
    );
    assert_eq!(email.recipients[0].attempts, 2);
    survivor.drain().await;
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn a_dead_workers_mail_is_taken_back_after_a_few_missed_beats_not_its_lease() {
    // As above, with the default 30 s lease: the survivor must not wait it out. The doomed
    // process stops beating as a lease holder when it dies; a few seconds later its lease
    // is taken back.
    let db = create_database().await;
    let mut config = test_config(&db);
    config.delivery.smtp_timeout_secs = 50;
    config.delivery.runner.lease_secs = 30;
    let id = killed_mid_delivery(&config, "beat@example.com").await;
    let died = std::time::Instant::now();

    let smtp = TestSmtpServer::start().await;
    let mut survivor_config = config;
    relay_to(&mut survivor_config, &smtp);
    survivor_config.delivery.smtp_timeout_secs = 2;
    let survivor = TestApp::builder().config(survivor_config).start().await;
    let email = survivor
        .wait_for_status(&id, &["delivered"], Duration::from_secs(12))
        .await;
    let took = died.elapsed();
    assert!(
        took < Duration::from_secs(12),
        "taken back {took:?} after the death: the 30 s lease was waited out"
    );
    assert_eq!(email.recipients[0].attempts, 2, "{email:#}");
    survivor.drain().await;
    assert_eq!(smtp.received().len(), 1);
}

/// Issue 29: a process whose beats stop going through (here a transaction holds its
/// holder row locked, as a stalled beat or a lost database link would) is taken for dead by
/// the other instance after 5 s, which takes its leases back. It must not be sending
/// anything by then: it claims no more work once its beats have failed for 3 s, so every
/// message still arrives once, and the other instance carries the load meanwhile.
#[tokio::test]
async fn a_process_whose_beats_stall_stops_claiming_before_others_take_its_work() {
    let smtp = TestSmtpServer::start().await;
    // Each send takes a while, so a process that kept claiming would always be mid-send.
    smtp.set_data_delay(Duration::from_millis(200));
    let db = create_database().await;
    let mut config = test_config(&db);
    relay_to(&mut config, &smtp);
    let a = TestApp::builder().config(config.clone()).start().await;
    let a_holder: uuid::Uuid = sqlx::query_scalar("SELECT id FROM lease_holders")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    let b = a.another_instance(config).await;
    let mut lock = a.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM lease_holders WHERE id = $1 FOR UPDATE")
        .bind(a_holder)
        .execute(&mut *lock)
        .await
        .unwrap();
    // Mail keeps coming in through A (which wakes A's own runner first) for 9 s.
    let mut ids = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(9);
    while std::time::Instant::now() < until {
        ids.push(
            a.send_ok(&json!({"from": "a@example.com", "to": format!("s{}@example.com", ids.len()), "subject": "s", "text": "t"}))
                .await,
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let a_dead: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT $1 IN ({})",
        mailgate::queue::holder::DEAD_HOLDERS
    )))
    .bind(a_holder)
    .fetch_one(&b.pool)
    .await
    .unwrap();
    assert!(a_dead, "B takes A for dead while its row is locked");
    lock.rollback().await.unwrap();
    for id in &ids {
        a.wait_for_status(id, &["delivered"], WAIT).await;
    }
    a.drain().await;
    b.drain().await;
    let received = smtp.received();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for m in &received {
        *per_id.entry(message_id_of(&m.data).unwrap()).or_default() += 1;
    }
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(per_id.len(), ids.len(), "every message arrived");
}

#[tokio::test]
async fn a_graceful_stop_finishes_deliveries_in_flight() {
    let smtp = TestSmtpServer::start().await;
    smtp.set_data_delay(Duration::from_millis(700));
    let db = create_database().await;
    let mut config = test_config(&db);
    relay_to(&mut config, &smtp);
    let app = TestApp::builder().config(config).start().await;
    for i in 0..4 {
        app.send_ok(&json!({"from": "a@example.com", "to": format!("g{i}@example.com"), "subject": "s", "text": "t"}))
            .await;
    }
    // A delivery is in flight: its DATA is waiting for the reply.
    smtp.wait_for_data(1, WAIT).await;
    let pool = app.pool.clone();
    app.stop().await;
    let (stuck,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM recipients WHERE status = 'sending'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stuck, 0, "a graceful stop leaves no lease behind");
    let (delivered,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM recipients WHERE status = 'delivered'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        delivered as usize,
        smtp.received().len(),
        "every relayed message is recorded as delivered"
    );
    assert!(delivered >= 1);
}

fn delivered(job: &mailgate::queue::mail::Job) -> mailgate::queue::mail::Outcome {
    mailgate::queue::mail::Outcome {
        recipient_id: job.recipient_id,
        message_id: job.message_id,
        attempt: job.attempts,
        status: mailgate::domain::RecipientStatus::Delivered,
        next_attempt_at: None,
        smtp_code: Some(250),
        enhanced_code: None,
        smtp_response: Some("ok".into()),
        relay_host: None,
        detail: None,
        data: None,
        postponed: false,
    }
}

/// A worker whose lease was taken over (it stalled past `lease_secs`) may still finish its
/// attempt; its outcome must not overwrite the newer attempt, and outcomes of a batch that
/// still hold their lease go through beside it.
#[tokio::test]
async fn an_outcome_from_a_lost_lease_is_ignored_and_the_rest_of_its_batch_is_kept() {
    use mailgate::queue::mail as queue;
    let db = create_database().await;
    let mut config = test_config(&db);
    config.workers_enabled = false;
    let app = TestApp::builder().config(config).start().await;
    let stale_id = app
        .send_ok(&json!({"from": "a@example.com", "to": "stale@example.com", "subject": "s", "text": "t"}))
        .await;
    let kept_id = app
        .send_ok(&json!({"from": "a@example.com", "to": "kept@example.com", "subject": "s", "text": "t"}))
        .await;
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let first = queue::claim(&app.pool, a, 10, 60.0).await.unwrap();
    assert_eq!(first.len(), 2);
    let stale = first
        .iter()
        .find(|j| j.email == "stale@example.com")
        .unwrap();
    let kept = first
        .iter()
        .find(|j| j.email == "kept@example.com")
        .unwrap();

    // Worker a stalls on `stale`; its lease runs out and worker b takes it over.
    sqlx::query("UPDATE recipients SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(stale.recipient_id)
        .execute(&app.pool)
        .await
        .unwrap();
    queue::reclaim_expired(&app.pool, 10).await.unwrap();
    let second = queue::claim(&app.pool, b, 10, 60.0).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].recipient_id, stale.recipient_id);
    assert_eq!(second[0].attempts, stale.attempts + 1);

    // a reports both: only the one it still holds counts.
    let done = queue::complete(&app.pool, a, &[delivered(stale), delivered(kept)])
        .await
        .unwrap();
    assert_eq!(done.messages, 1, "one message changed");
    let kept_now = app.get_email(&kept_id).await;
    assert_eq!(kept_now.recipients[0].status, "delivered", "{kept_now}");
    let stale_now = app.get_email(&stale_id).await;
    assert_eq!(
        stale_now.recipients[0].status, "sending",
        "b's attempt is still in flight: {stale_now}"
    );

    // b's own outcome lands.
    queue::complete(&app.pool, b, &[delivered(&second[0])])
        .await
        .unwrap();
    let stale_now = app.get_email(&stale_id).await;
    assert_eq!(stale_now.recipients[0].status, "delivered");
    assert_eq!(stale_now.recipients[0].attempts, 2);
}

/// Recording outcomes says whether webhook deliveries came of them, so the webhook runner is
/// woken only then: not for a project without endpoints, nor for events no endpoint wants.
#[tokio::test]
async fn recording_outcomes_wakes_webhooks_only_when_an_endpoint_wants_the_events() {
    use mailgate::queue::mail as queue;
    let db = create_database().await;
    let mut config = test_config(&db);
    config.workers_enabled = false;
    config.webhooks.allow_private_targets = true;
    let app = TestApp::builder().config(config).start().await;
    let owner = uuid::Uuid::now_v7();
    let deliver_one = async |to: &str| {
        app.send_ok(&json!({"from": "a@example.com", "to": to, "subject": "s", "text": "t"}))
            .await;
        let jobs = queue::claim(&app.pool, owner, 10, 60.0).await.unwrap();
        assert_eq!(jobs.len(), 1);
        queue::complete(&app.pool, owner, &[delivered(&jobs[0])])
            .await
            .unwrap()
    };
    let pending = async || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE event_type = 'email.delivered'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };

    let done = deliver_one("none@example.com").await;
    assert_eq!(
        (done.messages, done.webhooks),
        (1, false),
        "no endpoint at all"
    );

    app.create_webhook(&json!({"url": "http://127.35.0.1:9/hook", "events": ["email.bounced"]}))
        .await;
    let done = deliver_one("other@example.com").await;
    assert!(!done.webhooks, "the only endpoint wants bounces alone");
    assert_eq!(pending().await, 0);

    app.create_webhook(&json!({"url": "http://127.35.0.1:9/hook2", "events": ["email.delivered"]}))
        .await;
    let done = deliver_one("wanted@example.com").await;
    assert!(done.webhooks, "an endpoint wants email.delivered");
    assert_eq!(pending().await, 1);
}
