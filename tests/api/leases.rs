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
