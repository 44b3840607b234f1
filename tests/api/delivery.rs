//! How upstream replies become recipient statuses, retries and suppressions.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    api::Accepted,
    app::{TestApp, create_database, relay_to, spawn_app_relaying_to, test_config},
    eventually,
    smtp_server::{SmtpServerOptions, TestSmtpServer},
};

const WAIT: Duration = Duration::from_secs(20);

fn msg(to: serde_json::Value) -> serde_json::Value {
    json!({"from": "app@example.com", "to": to, "subject": "Hello", "text": "Hi"})
}

#[tokio::test]
async fn a_5xx_bounces_one_recipient_and_the_others_still_go() {
    let smtp = TestSmtpServer::start().await;
    smtp.rcpt_reply("gone@example.com", 550, "5.1.1 no such user", None);
    let app = spawn_app_relaying_to(&smtp).await;
    let id = app
        .send_ok(&msg(json!(["ok@example.com", "gone@example.com"])))
        .await;
    let email = app
        .wait_for_status(&id, &["partially_delivered"], WAIT)
        .await;
    assert_eq!(
        email.recipient_statuses(),
        [
            ("ok@example.com".into(), "delivered".into()),
            ("gone@example.com".into(), "bounced".into())
        ]
    );
    let bounced = &email.recipients[1];
    assert_eq!(bounced.smtp_code, Some(550));
    assert_eq!(bounced.enhanced_code.as_deref(), Some("5.1.1"));
    assert!(
        bounced
            .smtp_response
            .as_deref()
            .unwrap()
            .contains("no such user")
    );
    assert_eq!(smtp.received().len(), 1);

    // The bounced address is now suppressed: a new send reports it without relaying.
    let response = app
        .post_email_raw(
            &app.key,
            &msg(json!(["Gone@Example.com", "ok@example.com"])),
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: Accepted = response.json().await.unwrap();
    assert_eq!(body.recipients[0].status, "suppressed");
    assert_eq!(body.recipients[1].status, "queued");
    let all_suppressed = app
        .post_email_raw(&app.key, &msg(json!("gone@example.com")))
        .await;
    assert_eq!(all_suppressed.status(), 202);
    assert_eq!(
        all_suppressed.json::<Accepted>().await.unwrap().status,
        "suppressed"
    );
}

#[tokio::test]
async fn a_4xx_is_deferred_then_delivered_on_retry() {
    let smtp = TestSmtpServer::start().await;
    smtp.rcpt_reply("busy@example.com", 451, "4.3.0 try again later", Some(2));
    let app = spawn_app_relaying_to(&smtp).await;
    let id = app.send_ok(&msg(json!("busy@example.com"))).await;
    let email = app.wait_for_status(&id, &["delivered"], WAIT).await;
    assert_eq!(email.recipients[0].attempts, 3);
    assert_eq!(
        email.event_types(),
        [
            "queued:busy@example.com",
            "deferred:busy@example.com",
            "deferred:busy@example.com",
            "delivered:busy@example.com"
        ]
    );
    let deferred = &email.events[1];
    assert_eq!(deferred.smtp_code, Some(451));
    assert_eq!(deferred.enhanced_code.as_deref(), Some("4.3.0"));
    assert_eq!(deferred.attempt, Some(1));
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn a_connection_dropped_mid_data_is_retried_and_delivered_once() {
    let smtp = TestSmtpServer::start().await;
    smtp.drop_after_data(1);
    let app = spawn_app_relaying_to(&smtp).await;
    let id = app.send_ok(&msg(json!("x@example.com"))).await;
    let email = app.wait_for_status(&id, &["delivered"], WAIT).await;
    let events = &email.events;
    assert_eq!(events[1].kind, "deferred");
    assert!(
        events[1].detail.as_deref().unwrap().len() > 3,
        "the deferral says why: {}",
        events[1]
    );
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn persistent_4xx_fails_after_max_attempts() {
    let smtp = TestSmtpServer::start().await;
    smtp.rcpt_reply("full@example.com", 452, "4.2.2 mailbox full", None);
    let db = create_database().await;
    let mut config = test_config(&db);
    relay_to(&mut config, &smtp);
    config.delivery.max_attempts = 3;
    let app = TestApp::builder().config(config).start().await;
    let id = app.send_ok(&msg(json!("full@example.com"))).await;
    let email = app.wait_for_status(&id, &["failed"], WAIT).await;
    let r = &email.recipients[0];
    assert_eq!(r.attempts, 3);
    assert_eq!(r.smtp_code, Some(452));
    let last = email.events.last().unwrap().clone();
    assert_eq!(last.kind, "failed");
    assert!(
        last.detail
            .as_deref()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{last}"
    );
}

#[tokio::test]
async fn a_slow_relay_times_out_and_the_message_goes_later() {
    let smtp = TestSmtpServer::start().await;
    smtp.set_data_delay(Duration::from_secs(4));
    let app = spawn_app_relaying_to(&smtp).await;
    let first = app.send_ok(&msg(json!("slow@example.com"))).await;
    // The attempt timeout (2 s in tests) defers it. Polled, not drained: a drain would go on
    // to the retries that come due meanwhile, each another timeout.
    let email = eventually("a deferral for the timeout", WAIT, async || {
        let email = app.get_email(&first).await;
        if email.events_of("deferred").is_empty() {
            Err(format!("{email:#}"))
        } else {
            Ok(email)
        }
    })
    .await;
    let e = email.events_of("deferred")[0];
    assert!(e.detail.as_deref().unwrap().contains("timeout"), "{e}");
    smtp.set_data_delay(Duration::ZERO);
    // After the relay recovers, mail flows and every reply belongs to its own message.
    let second = app.send_ok(&msg(json!("next@example.com"))).await;
    app.wait_for_status(&first, &["delivered"], WAIT).await;
    app.wait_for_status(&second, &["delivered"], WAIT).await;
    let mut rcpts: Vec<String> = smtp
        .received()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    rcpts.sort();
    rcpts.dedup();
    assert_eq!(rcpts, ["next@example.com", "slow@example.com"]);
}

#[tokio::test]
async fn relays_over_starttls_with_auth() {
    let smtp = TestSmtpServer::start_with(SmtpServerOptions {
        require_tls_and_auth: Some(("mailgate".into(), "s3cret".into())),
        ..Default::default()
    })
    .await;
    let db = create_database().await;
    let mut config = test_config(&db);
    config.relays.insert(
        "default".into(),
        mailgate::config::RelayConfig {
            url: Some(
                format!(
                    "smtp://mailgate:s3cret@localhost:{}?tls=required",
                    smtp.addr.port()
                )
                .into(),
            ),
            pool_size: Some(2),
            tls_insecure: true,
            max_rate_per_sec: None,
            burst: None,
            max_connections: None,
            mx: false,
            egress: Vec::new(),
            allow_private_mx: false,
        },
    );
    let app = TestApp::builder().config(config).start().await;
    let id = app.send_ok(&msg(json!("secure@example.com"))).await;
    app.wait_for_status(&id, &["delivered"], WAIT).await;
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].tls);
    assert_eq!(received[0].auth, Some(("mailgate".into(), "s3cret".into())));
    assert!(
        received[0].pipelined,
        "the relay offered PIPELINING after STARTTLS: MAIL, RCPT and DATA went in one write"
    );
}

#[tokio::test]
async fn wrong_relay_credentials_defer_instead_of_bouncing() {
    let smtp = TestSmtpServer::start_with(SmtpServerOptions {
        require_tls_and_auth: Some(("mailgate".into(), "right".into())),
        ..Default::default()
    })
    .await;
    let db = create_database().await;
    let mut config = test_config(&db);
    config.relays.insert(
        "default".into(),
        mailgate::config::RelayConfig {
            url: Some(
                format!(
                    "smtp://mailgate:wrong@localhost:{}?tls=required",
                    smtp.addr.port()
                )
                .into(),
            ),
            pool_size: Some(2),
            tls_insecure: true,
            max_rate_per_sec: None,
            burst: None,
            max_connections: None,
            mx: false,
            egress: Vec::new(),
            allow_private_mx: false,
        },
    );
    let app = TestApp::builder().config(config).start().await;
    let id = app.send_ok(&msg(json!("someone@example.com"))).await;
    // Polled: the deferral is retried 0.2 s later, so a read after a drain could catch the
    // retry in flight.
    let r = eventually("the recipient deferred", WAIT, async || {
        let email = app.get_email(&id).await;
        let r = email.recipients[0].clone();
        assert_ne!(
            r.status, "bounced",
            "an auth failure must not bounce the recipient"
        );
        if r.status == "deferred" {
            Ok(r)
        } else {
            Err(format!("{email:#}"))
        }
    })
    .await;
    assert_eq!(r.smtp_code, Some(535));
    // Nothing was put on the suppression list.
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM suppressions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// What `GET /v1/emails/{id}` shows is one moment: a recipient shown `delivered` always has
/// its `delivered` event beside it, however the reads interleave with deliveries.
#[tokio::test]
async fn an_email_read_during_delivery_never_shows_a_status_without_its_event() {
    let smtp = TestSmtpServer::start().await;
    // Deliveries spread over a second or so, so reads land between their commits.
    smtp.set_data_delay(Duration::from_millis(10));
    let app = spawn_app_relaying_to(&smtp).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            app.send_ok(&msg(json!([
                format!("a{i}@example.com"),
                format!("b{i}@example.com")
            ])))
            .await,
        );
    }
    let mut done = std::collections::HashSet::new();
    eventually("every email delivered", WAIT, async || {
        let reads = futures_util::future::join_all(ids.iter().map(|id| app.get_email(id))).await;
        for (id, email) in ids.iter().zip(reads) {
            let events = email.event_types();
            for (rcpt, status) in email.recipient_statuses() {
                if status == "delivered" {
                    assert!(
                        events.contains(&format!("delivered:{rcpt}")),
                        "{rcpt} shown delivered without its event: {email:#}"
                    );
                }
            }
            if email.status == "delivered" {
                done.insert(id.clone());
            }
        }
        done.len() == ids.len()
    })
    .await;
}
