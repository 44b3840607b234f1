//! Never an open relay: nothing is accepted without AUTH (or a trusted network), passwords
//! only travel encrypted, and guessing is locked out.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::json;

use crate::{
    client::{Connect, Mail, RawClient, smtplib_send},
    submission::trust_loopback,
    support::{
        app::{TestApp, spawn_app_relaying_to},
        smtp_server::TestSmtpServer,
    },
};

fn hello() -> Mail<'static> {
    Mail {
        from: "a@example.com",
        to: &["b@example.net"],
        data: b"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n",
    }
}

async fn stored_messages(app: &crate::support::app::TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn open_relay_attempts_are_refused() {
    let upstream = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&upstream).await;

    // Plain text, no AUTH: only STARTTLS is offered, and nothing is taken.
    let (mut c, ehlo) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    assert!(ehlo.contains("250-STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "AUTH offered before TLS: {ehlo}");
    assert!(ehlo.contains("SIZE") && ehlo.contains("8BITMIME"), "{ehlo}");
    assert!(ehlo.contains("ENHANCEDSTATUSCODES"), "{ehlo}");
    let r = c.cmd("MAIL FROM:<spammer@example.com>").await;
    assert!(r.starts_with("530 5.7.0 "), "{r}");
    let r = c.cmd("RCPT TO:<victim@example.net>").await;
    assert!(r.starts_with("530 5.7.0 "), "{r}");
    let r = c.cmd("DATA").await;
    assert!(r.starts_with("530 5.7.0 "), "{r}");
    // A password is never taken over plain text from an untrusted network.
    let plain = B64.encode(format!("\0user\0{}", app.key));
    let r = c.cmd(&format!("AUTH PLAIN {plain}")).await;
    assert!(r.starts_with("538 5.7.11 "), "{r}");

    // Encrypted but still without AUTH: refused all the same.
    let out = smtplib_send(app.smtp_addr.unwrap(), Connect::StartTls, None, &[hello()]).await;
    assert_eq!(out[0]["code"], 530, "{out:?}");

    assert_eq!(stored_messages(&app).await, 0);
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn wrong_keys_get_535_and_repeated_failures_lock_the_address_out() {
    // smtplib's login() tries PLAIN and then LOGIN: two attempts per wrong key.
    let app = TestApp::builder()
        .configure(|c| c.smtp.auth_max_failures = 4)
        .start()
        .await;
    let addr = app.smtp_addr.unwrap();
    let login = |key: String| async move {
        let out = smtplib_send(addr, Connect::StartTls, Some(&key), &[]).await;
        out[0]["login"].clone()
    };

    // A real key without the send scope: refused, but it is no guess.
    let no_send = app.create_key("acme", "messages", false).await;
    let out = login(no_send).await;
    assert_eq!(out["code"], 535);
    assert!(
        out["error"].as_str().unwrap().contains("send scope"),
        "{out}"
    );

    let wrong_shape = login("hunter2".into()).await;
    assert_eq!(wrong_shape["code"], 535);
    assert!(
        wrong_shape["error"].as_str().unwrap().starts_with("5.7.8 "),
        "{wrong_shape}"
    );
    let unknown = login(format!("mg_live_{}", "x".repeat(40))).await;
    assert_eq!(unknown["code"], 535, "{unknown}");

    // Four failures: now even the right key is turned away for a while.
    let locked = login(app.key.clone()).await;
    assert_eq!(locked["code"], 454, "{locked}");
    assert!(
        locked["error"].as_str().unwrap().starts_with("4.7.0 "),
        "{locked}"
    );
}

#[tokio::test]
async fn the_right_key_logs_in_and_sends() {
    let app = TestApp::builder().start().await;
    let out = smtplib_send(
        app.smtp_addr.unwrap(),
        Connect::StartTls,
        Some(&app.key),
        &[hello()],
    )
    .await;
    assert_eq!(out[0], json!({"login": "ok"}));
    assert!(
        out[1]["reply"].as_str().unwrap().contains("queued as"),
        "{out:?}"
    );
}

#[tokio::test]
async fn auth_exchanges_step_by_step() {
    // A trusted network may authenticate without TLS, which lets this test speak raw SMTP.
    let app = TestApp::builder().configure(trust_loopback).start().await;
    let addr = app.smtp_addr.unwrap();

    // PLAIN without an initial response: an empty 334 challenge first.
    let (mut c, _) = RawClient::ehlo(addr).await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "334");
    let r = c
        .cmd(&B64.encode(format!("authz\0user\0{}", app.key)))
        .await;
    assert!(r.starts_with("235 2.7.0 "), "{r}");
    let r = c.cmd("AUTH PLAIN").await;
    assert!(r.starts_with("503 5.5.1 "), "{r}");

    // LOGIN: user name, then password.
    let (mut c, _) = RawClient::ehlo(addr).await;
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
    assert_eq!(c.cmd(&B64.encode("anyone")).await, "334 UGFzc3dvcmQ6");
    let r = c.cmd(&B64.encode(&app.key)).await;
    assert!(r.starts_with("235 2.7.0 "), "{r}");

    // Cancelled, undecodable, and unsupported mechanisms.
    let (mut c, _) = RawClient::ehlo(addr).await;
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
    assert!(c.cmd("*").await.starts_with("501 "));
    assert!(
        c.cmd("AUTH PLAIN !!!notbase64")
            .await
            .starts_with("501 5.5.2 ")
    );
    assert!(c.cmd("AUTH CRAM-MD5").await.starts_with("504 5.5.4 "));
    let wrong = B64.encode("\0user\0mg_live_wrong");
    assert!(
        c.cmd(&format!("AUTH PLAIN {wrong}"))
            .await
            .starts_with("535 5.7.8 ")
    );
}
