//! Relay pools: failover by priority, pools picked per send or per project, relay health.

use std::time::Duration;

use mailgate::config::RelayConfig;
use serde_json::{Value, json};

use crate::support::{
    app::{JWT_SECRET, TestApp},
    smtp_server::TestSmtpServer,
};

const WAIT: Duration = Duration::from_secs(20);

fn relay(addr: &str) -> RelayConfig {
    RelayConfig {
        url: Some(format!("smtp://{addr}?tls=none").into()),
        pool_size: Some(2),
        tls_insecure: false,
        max_rate_per_sec: None,
        burst: None,
        max_connections: None,
        mx: false,
        egress: Vec::new(),
        allow_private_mx: false,
    }
}

/// primary → backup as the default pool, and an `eu` pool with backup only.
async fn app_with(primary: &str, backup: &TestSmtpServer) -> TestApp {
    let backup = backup.addr.to_string();
    TestApp::builder()
        .configure(|c| {
            c.relays.insert("primary".into(), relay(primary));
            c.relays.insert("backup".into(), relay(&backup));
            c.pools
                .insert("default".into(), vec!["primary".into(), "backup".into()]);
            c.pools.insert("eu".into(), vec!["backup".into()]);
        })
        .start()
        .await
}

fn msg(to: &str) -> Value {
    json!({"from": "a@example.com", "to": to, "subject": "s", "text": "t"})
}

#[tokio::test]
async fn a_dead_primary_fails_over_to_the_backup() {
    let backup = TestSmtpServer::start().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let app = app_with(&dead, &backup).await;
    let id = app.send_ok(&msg("x@example.com")).await;
    let email = app.wait_for_status(&id, &["delivered"], WAIT).await;
    let r = &email.recipients[0];
    assert_eq!(r.relay_host, Some(backup.addr.to_string()));
    assert_eq!(r.attempts, 1, "failover happens within one attempt");
    let delivered = email.events.last().unwrap().clone();
    assert!(
        delivered
            .detail
            .as_deref()
            .unwrap()
            .contains("failover from primary"),
        "{delivered}"
    );
    assert_eq!(backup.received().len(), 1);

    // The operator sees which relay is failing.
    let secret: secrecy::SecretString = JWT_SECRET.to_string().into();
    let token =
        mailgate::service::gate::mint_operator_token(&secret, Duration::from_secs(60)).unwrap();
    let relays: Value = app
        .http
        .get(app.url("/v1/relays"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_name = |n: &str| {
        relays["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap()
            .clone()
    };
    assert!(
        by_name("primary")["health"]["consecutive_failures"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(by_name("primary")["health"]["last_error"].is_string());
    assert!(by_name("backup")["health"]["last_success_at"].is_string());
    assert_eq!(by_name("backup")["pools"], json!(["default", "eu"]));
    assert_eq!(
        app.http
            .get(app.url("/v1/relays"))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}

#[tokio::test]
async fn a_4xx_fails_over_but_a_5xx_bounces() {
    let primary = TestSmtpServer::start().await;
    primary.rcpt_reply("busy@example.com", 451, "4.3.2 try later", None);
    primary.rcpt_reply("gone@example.com", 550, "5.1.1 no such user", None);
    let backup = TestSmtpServer::start().await;
    let app = app_with(&primary.addr.to_string(), &backup).await;

    let busy = app.send_ok(&msg("busy@example.com")).await;
    app.wait_for_status(&busy, &["delivered"], WAIT).await;
    assert_eq!(backup.received()[0].rcpt_to, ["busy@example.com"]);

    let gone = app.send_ok(&msg("gone@example.com")).await;
    app.drain().await;
    assert_eq!(app.get_email(&gone).await.status, "bounced");
    assert_eq!(
        backup.received().len(),
        1,
        "a 5xx is the recipient's answer: no failover"
    );
}

#[tokio::test]
async fn pools_are_chosen_per_send_and_per_project() {
    let primary = TestSmtpServer::start().await;
    let backup = TestSmtpServer::start().await;
    let app = app_with(&primary.addr.to_string(), &backup).await;

    let mut body = msg("eu@example.com");
    body["relay"] = json!("eu");
    let id = app.send_ok(&body).await;
    app.wait_for_status(&id, &["delivered"], WAIT).await;
    assert_eq!(backup.received().len(), 1);
    assert!(primary.received().is_empty());

    // A project whose default is `eu`: its mail skips the default pool.
    mailgate::store::projects::set_default_relay(&app.pool, "acme", Some("eu"))
        .await
        .unwrap();
    let id = app.send_ok(&msg("project-default@example.com")).await;
    app.wait_for_status(&id, &["delivered"], WAIT).await;
    assert_eq!(backup.received().len(), 2);
    assert!(primary.received().is_empty());

    let mut unknown = msg("x@example.com");
    unknown["relay"] = json!("mars");
    assert_eq!(app.post_email_raw(&app.key, &unknown).await.status(), 422);
}

/// A pooled connection is reused without a NOOP first; when the relay hung up while it
/// idled (closed without a word, or `421` to the next command), the message goes on a new
/// connection at once, once, and the attempt is not counted as failed.
#[tokio::test]
async fn a_pooled_connection_is_reused_without_noop_and_a_relay_that_hung_up_costs_nothing() {
    let smtp = TestSmtpServer::start().await;
    let app = TestApp::builder().relaying_to(&smtp).start().await;
    let send = async |n: usize| {
        let id = app
            .send_ok(&json!({"from": "a@example.com", "to": format!("r{n}@example.com"), "subject": format!("m{n}"), "text": "t"}))
            .await;
        let email = app.wait_for_status(&id, &["delivered"], WAIT).await;
        assert_eq!(
            email.event_types(),
            [
                format!("queued:r{n}@example.com"),
                format!("delivered:r{n}@example.com")
            ],
            "message {n}: {email:#}"
        );
        assert_eq!(email.recipients[0].attempts, 1, "message {n}");
    };
    send(1).await;
    send(2).await;
    assert_eq!(smtp.connections(), 1, "the connection was reused");
    assert_eq!(smtp.noops(), 0, "no NOOP before reusing a fresh connection");

    // The relay closes after the next message; the one after finds the socket closed.
    smtp.close_after_message(1);
    send(3).await;
    send(4).await;
    assert_eq!(smtp.connections(), 2);
    // The relay answers the next MAIL with 421 and closes.
    smtp.mail_421(1);
    send(5).await;
    assert_eq!(smtp.connections(), 3);

    let subjects: Vec<String> = smtp
        .received()
        .iter()
        .map(|m| {
            m.text()
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        subjects,
        [
            "Subject: m1",
            "Subject: m2",
            "Subject: m3",
            "Subject: m4",
            "Subject: m5"
        ],
        "each message once"
    );
    assert_eq!(smtp.noops(), 0);
}

/// A relay that offers PIPELINING gets MAIL, RCPT and DATA in one write (RFC 2920); a
/// recipient it refuses in that batch bounces with its reply, and the next message goes
/// whole on a fresh connection. A relay that does not offer it gets one command at a time.
#[tokio::test]
async fn a_relay_that_offers_pipelining_gets_the_envelope_in_one_write() {
    let smtp = TestSmtpServer::start().await;
    smtp.rcpt_reply("gone@example.com", 550, "5.1.1 no such user", None);
    let app = TestApp::builder().relaying_to(&smtp).start().await;
    let send = async |to: &str, subject: &str, status: &str| {
        let id = app
            .send_ok(&json!({"from": "a@example.com", "to": to, "subject": subject, "text": "t"}))
            .await;
        app.wait_for_status(&id, &[status], WAIT).await
    };
    send("r1@example.com", "m1", "delivered").await;
    let bounced = send("gone@example.com", "m2", "bounced").await;
    assert_eq!(bounced.recipients[0].smtp_code, Some(550), "{bounced:#}");
    assert_eq!(
        bounced.recipients[0].enhanced_code.as_deref(),
        Some("5.1.1")
    );
    send("r3@example.com", "m3", "delivered").await;
    let received = smtp.received();
    assert_eq!(
        received
            .iter()
            .map(|m| m.rcpt_to.clone())
            .collect::<Vec<_>>(),
        [
            vec!["r1@example.com".to_string()],
            vec!["r3@example.com".to_string()]
        ],
        "each delivered message once, the refused one never"
    );
    assert!(
        received.iter().all(|m| m.pipelined),
        "pipelined: {received:?}"
    );

    let plain = TestSmtpServer::start().await;
    plain.set_pipelining(false);
    let app = TestApp::builder().relaying_to(&plain).start().await;
    let id = app
        .send_ok(
            &json!({"from": "a@example.com", "to": "r4@example.com", "subject": "m4", "text": "t"}),
        )
        .await;
    app.wait_for_status(&id, &["delivered"], WAIT).await;
    let received = plain.received();
    assert_eq!(received.len(), 1);
    assert!(!received[0].pipelined, "PIPELINING was not offered");
}
