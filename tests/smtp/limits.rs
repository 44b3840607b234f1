//! Size, recipients, rate limit, timeouts and the session cap.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mailgate::smtp::limit::{Admission, Client, SubmissionLimiter};

use crate::{
    client::{RawClient, dot_stuff},
    submission::trust_loopback,
    support::{
        app::{TestApp, create_database, test_config},
        eventually,
    },
};

const SMALL: &[u8] = b"From: a@example.com\r\nSubject: small\r\n\r\nhi\r\n";

async fn stored_messages(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn oversize_messages_are_refused_at_mail_and_after_data() {
    let app = TestApp::builder()
        .configure(|c| {
            trust_loopback(c);
            c.smtp.max_message_bytes = Some(1000);
        })
        .start()
        .await;
    let (mut c, ehlo) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    assert!(ehlo.contains("SIZE 1000"), "{ehlo}");

    // Declared too large: refused before any data.
    let r = c.cmd("MAIL FROM:<a@example.com> SIZE=5000").await;
    assert!(r.starts_with("552 5.3.4 "), "{r}");

    // Undeclared, then too large: read to the end and refused.
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("250 "));
    assert!(c.cmd("RCPT TO:<b@example.net>").await.starts_with("250 "));
    assert!(c.cmd("DATA").await.starts_with("354 "));
    let mut big = b"From: a@example.com\r\nSubject: big\r\n\r\n".to_vec();
    for _ in 0..40 {
        big.extend_from_slice(&[b'x'; 60]);
        big.extend_from_slice(b"\r\n");
    }
    c.write(&dot_stuff(&big)).await;
    c.write(b".\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("552 5.3.4 "), "{r}");

    // The session stays usable.
    let r = c.send("a@example.com", &["b@example.net"], SMALL).await;
    assert!(r.starts_with("250 2.0.0 queued as "), "{r}");
    assert_eq!(stored_messages(&app).await, 1);
}

#[tokio::test]
async fn recipients_beyond_the_limit_get_452() {
    let app = TestApp::builder()
        .configure(|c| {
            trust_loopback(c);
            c.smtp.max_recipients = 2;
        })
        .start()
        .await;
    let (mut c, _) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("250 "));
    assert!(c.cmd("RCPT TO:<b1@example.net>").await.starts_with("250 "));
    assert!(c.cmd("RCPT TO:<b2@example.net>").await.starts_with("250 "));
    let r = c.cmd("RCPT TO:<b3@example.net>").await;
    assert!(r.starts_with("452 4.5.3 "), "{r}");
    // The two accepted recipients still make a message.
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.write(&dot_stuff(SMALL)).await;
    c.write(b".\r\n").await;
    assert!(c.reply().await.starts_with("250 2.0.0 queued as "));
}

#[tokio::test]
async fn messages_that_cannot_be_relayed_safely_get_554() {
    let app = TestApp::builder().configure(trust_loopback).start().await;
    let (mut c, _) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    for bad in [
        &b"From: a@example.com\r\n\r\nbare\nline feed\r\n"[..],
        b"Subject: no From header\r\n\r\nx\r\n",
        b"From: a@example.com\r\nX-Mailgate-Tag: not a tag!\r\n\r\nx\r\n",
    ] {
        let r = c.send("a@example.com", &["b@example.net"], bad).await;
        assert!(r.starts_with("554 5.6.0 "), "{r}");
    }
    assert!(c.cmd("MAIL FROM:<>").await.starts_with("553 5.1.7 "));
    assert!(
        // SMTPUTF8 is offered now (tests/smtp/intl.rs); BINARYMIME still is not.
        c.cmd("MAIL FROM:<a@example.com> BODY=BINARYMIME")
            .await
            .starts_with("555 ")
    );
    assert_eq!(stored_messages(&app).await, 0);
}

/// Refuses every message after the first `allow`.
struct Quota {
    allow: usize,
    used: AtomicUsize,
}

impl SubmissionLimiter for Quota {
    fn acquire<'a>(&'a self, _who: Client) -> Pin<Box<dyn Future<Output = Admission> + Send + 'a>> {
        Box::pin(async move {
            if self.used.fetch_add(1, Ordering::SeqCst) < self.allow {
                Admission::Allowed
            } else {
                Admission::Limited {
                    retry_after: Duration::from_secs(30),
                }
            }
        })
    }
}

#[tokio::test]
async fn the_rate_limit_hook_answers_451_and_stores_nothing() {
    let app = TestApp::builder()
        .configure(trust_loopback)
        .adjust(|app| {
            app.set_smtp_limiter(Arc::new(Quota {
                allow: 1,
                used: AtomicUsize::new(0),
            }))
        })
        .start()
        .await;
    let (mut c, _) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    let r = c.send("a@example.com", &["b@example.net"], SMALL).await;
    assert!(r.starts_with("250 2.0.0 queued as "), "{r}");
    let r = c.send("a@example.com", &["b@example.net"], SMALL).await;
    assert_eq!(r, "451 4.7.1 rate limit exceeded; try again in 30 s");
    assert_eq!(stored_messages(&app).await, 1);
}

#[tokio::test]
async fn idle_clients_are_dropped_and_sessions_are_capped() {
    let app = TestApp::builder()
        .configure(|c| {
            c.smtp.idle_timeout_secs = 1;
            c.smtp.max_sessions = 1;
        })
        .start()
        .await;
    let addr = app.smtp_addr.unwrap();
    let (mut first, greeting) = RawClient::connect(addr).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    let (mut second, refused) = RawClient::connect(addr).await;
    assert!(refused.starts_with("421 4.3.2 "), "{refused}");
    assert!(second.closed().await);

    // Silent for longer than the idle timeout: told so, then disconnected.
    let r = first.reply().await;
    assert!(r.starts_with("421 4.4.2 "), "{r}");
    assert!(first.closed().await);

    // The slot is free again, as soon as the server has let go of the closed session.
    eventually("a free session slot", Duration::from_secs(5), async || {
        let (_third, greeting) = RawClient::connect(addr).await;
        assert!(
            greeting.starts_with("220 ") || greeting.starts_with("421 4.3.2 "),
            "{greeting}"
        );
        greeting.starts_with("220 ")
    })
    .await;
}

#[tokio::test]
async fn sessions_end_at_the_session_time_limit() {
    let app = TestApp::builder()
        .configure(|c| {
            c.smtp.idle_timeout_secs = 60;
            c.smtp.session_timeout_secs = 1;
        })
        .start()
        .await;
    let (mut c, _) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    // Busy partway through the session (time passing is the point here): activity does not
    // extend it, the session still ends at its limit. This wait is inside that second anyway.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(c.cmd("NOOP").await.starts_with("250 "));
    let r = c.reply().await;
    assert!(r.starts_with("421 4.4.2 "), "{r}");
}

#[tokio::test]
async fn shutdown_tells_open_sessions_to_come_back_later() {
    let app = TestApp::builder().start().await;
    let (mut c, _) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    let stopping = tokio::spawn(app.stop());
    let r = c.reply().await;
    assert!(r.starts_with("421 4.3.2 "), "{r}");
    assert!(c.closed().await);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stops promptly with a session open")
        .unwrap();
}

#[tokio::test]
async fn killing_the_app_ends_sessions_and_the_listener() {
    let app = TestApp::builder().start().await;
    let addr = app.smtp_addr.unwrap();
    let (mut c, _) = RawClient::ehlo(addr).await;
    app.kill().await;
    assert!(c.closed().await);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn smtp_mail_is_charged_to_the_send_bucket_of_the_real_limiter() {
    let db = create_database().await;
    let mut config = test_config(&db);
    trust_loopback(&mut config);
    // One message at once, refilled every 100 s: the second message must wait.
    config.ratelimit.send.rate_per_sec = 0.01;
    config.ratelimit.send.burst = 1;
    let app = TestApp::builder().config(config).start().await;
    let (mut c, _) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    let r = c.send("a@example.com", &["b@example.net"], SMALL).await;
    assert!(r.starts_with("250 2.0.0 queued as "), "{r}");
    let r = c.send("a@example.com", &["b@example.net"], SMALL).await;
    assert!(r.starts_with("451 4.7.1 rate limit exceeded"), "{r}");
    assert_eq!(stored_messages(&app).await, 1);
}
