//! Heartbeat leases: a claim is short, and renewed while its attempt runs, so an attempt may
//! outlast the lease without a second process taking the job.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    app::{TestApp, create_database, relay_to, test_config},
    smtp_server::TestSmtpServer,
};

#[tokio::test]
async fn an_attempt_longer_than_the_lease_keeps_its_job_and_the_mail_goes_once() {
    // The relay takes 5 s to answer DATA; the lease is 3 s. Without the heartbeat the second
    // instance would reclaim the job after 3 s and relay it again.
    let smtp = TestSmtpServer::start().await;
    smtp.set_data_delay(Duration::from_secs(5));
    let db = create_database().await;
    let mut config = test_config(&db);
    relay_to(&mut config, &smtp);
    config.delivery.runner.lease_secs = 3;
    config.delivery.smtp_timeout_secs = 20;
    let a = TestApp::builder().config(config.clone()).start().await;
    let b = a.another_instance(config).await;

    let id = a
        .send_ok(&json!({"from": "a@example.com", "to": "slow@example.com", "subject": "s", "text": "t"}))
        .await;
    let email = a
        .wait_for_status(&id, &["delivered"], Duration::from_secs(30))
        .await;
    // Both instances have done all they were going to.
    a.drain().await;
    b.drain().await;

    assert_eq!(smtp.received().len(), 1, "relayed more than once");
    assert_eq!(
        email.event_types(),
        ["queued:slow@example.com", "delivered:slow@example.com"],
        "the lease must never have expired"
    );
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM recipients")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 1);
}

/// Issue 30's scale run: when recording outcomes falls behind (there the statement was slow
/// on a big table; here a transaction holds `events` so no outcome can be written), a
/// runner whose handler takes no time (sandbox) used to keep claiming until everything due
/// was leased to it, 318,865 rows whose lease renewal then ran for minutes. Claiming now
/// waits once `concurrency` + 1,024 jobs are claimed and unrecorded, and goes on when they
/// are recorded.
#[tokio::test]
async fn claiming_waits_while_recording_outcomes_falls_behind() {
    const QUEUED: usize = 2500;
    let db = create_database().await;
    let config = test_config(&db);
    let front = TestApp::builder()
        .config(config.clone())
        .without_workers()
        .start()
        .await;
    let item = json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"});
    for _ in 0..QUEUED / 500 {
        let r = front
            .post_json("/v1/emails/batch", &json!(vec![item.clone(); 500]))
            .await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let mut hold = front.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN SHARE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let worker = front.another_instance(config.clone()).await;
    let bound = (config.delivery.runner.concurrency + 1024) as i64;
    let sending = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM recipients WHERE status = 'sending'")
            .fetch_one(&worker.pool)
            .await
            .unwrap()
    };
    let mut most = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        most = most.max(sending().await);
    }
    assert!(most > 0, "the worker claimed nothing");
    assert!(
        most <= bound,
        "{most} claimed and unrecorded, more than {bound}"
    );
    hold.rollback().await.unwrap();
    let waiting = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM recipients WHERE status <> 'delivered'")
            .fetch_one(&worker.pool)
            .await
            .unwrap()
    };
    let started = std::time::Instant::now();
    while waiting().await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} still not delivered",
            waiting().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
