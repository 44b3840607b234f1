//! Internationalized addresses submitted over SMTP (RFC 6531, RFC 6532): the listener offers
//! SMTPUTF8, takes UTF-8 envelopes and headers, and the relay gets A-label domains, with
//! SMTPUTF8 when it offers it and a 5.6.7 bounce for UTF-8 local parts when it does not.

use std::time::Duration;

use crate::{
    client::{Connect, Mail, RawClient, queued_id, smtplib_send},
    submission::trust_loopback,
    support::{
        app::{TestApp, spawn_app_relaying_to},
        eventually,
        smtp_server::{ReceivedMessage, SmtpServerOptions, TestSmtpServer},
    },
};

const WAIT: Duration = Duration::from_secs(20);
const CHINESE: &str = "用户@例子.中国";
const GERMAN: &str = "josé@bücher.example";
const ADA: &str = "ada@bücher.example";

async fn upstream(smtputf8: bool) -> TestSmtpServer {
    TestSmtpServer::start_with(SmtpServerOptions {
        smtputf8,
        ..Default::default()
    })
    .await
}

fn received_for(received: &[ReceivedMessage], rcpt: &str) -> ReceivedMessage {
    received
        .iter()
        .find(|m| m.rcpt_to == [rcpt])
        .cloned()
        .unwrap_or_else(|| panic!("nothing received for {rcpt}: {received:#?}"))
}

/// UTF-8 headers (RFC 6532), complete so that nothing is added on the way.
fn utf8_message() -> Vec<u8> {
    "Date: Thu, 02 Jan 2025 03:04:05 +0000\r\n\
Message-ID: <intl-1@xn--bcher-kva.example>\r\n\
From: Bücherei <josé@bücher.example>\r\n\
To: 用户 <用户@例子.中国>, ada@bücher.example\r\n\
Subject: Grüße, 你好\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Grüße aus der Bücherei.\r\n"
        .as_bytes()
        .to_vec()
}

#[tokio::test]
async fn smtplib_submits_utf8_envelopes_and_headers_relayed_with_smtputf8() {
    let upstream = upstream(true).await;
    let app = spawn_app_relaying_to(&upstream).await;
    let message = utf8_message();
    // smtplib refuses SMTPUTF8 unless the server offers it: this also checks the EHLO.
    let out = smtplib_send(
        app.smtp_addr.unwrap(),
        Connect::StartTls,
        Some(&app.key),
        &[Mail {
            from: GERMAN,
            to: &[CHINESE, ADA],
            data: &message,
        }],
    )
    .await;
    let reply = out[1]["reply"]
        .as_str()
        .unwrap_or_else(|| panic!("{out:?}"));
    let id = queued_id(reply);
    let email = app.wait_for_status(&id, &["delivered"], WAIT).await;
    assert_eq!(email.from_addr, GERMAN);
    assert_eq!(email.subject, "Grüße, 你好");
    let kinds: Vec<(&str, &str)> = email
        .recipients
        .iter()
        .map(|r| (r.email.as_str(), r.kind.as_str()))
        .collect();
    assert_eq!(kinds, [(CHINESE, "to"), (ADA, "to")]);

    let received = upstream.wait_for(2, WAIT).await;
    for rcpt in ["用户@xn--fsqu00a.xn--fiqs8s", "ada@xn--bcher-kva.example"] {
        let got = received_for(&received, rcpt);
        // The sender's local part is UTF-8, so both copies need SMTPUTF8.
        assert_eq!(got.mail_from, "josé@xn--bcher-kva.example");
        assert!(got.mail_params.contains(&"SMTPUTF8".into()), "{got:?}");
        // The UTF-8 headers are relayed byte for byte.
        assert_eq!(got.data, message);
    }
}

#[tokio::test]
async fn utf8_local_parts_bounce_with_5_6_7_when_the_upstream_lacks_smtputf8() {
    let upstream = upstream(false).await;
    let app = TestApp::builder()
        .relaying_to(&upstream)
        .configure(trust_loopback)
        .start()
        .await;
    let (mut c, ehlo) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    assert!(ehlo.contains("SMTPUTF8"), "{ehlo}");
    // RFC 6531 §3.4: a UTF-8 address only after MAIL FROM:<…> SMTPUTF8.
    let r = c.cmd("MAIL FROM:<shop@example.com>").await;
    assert!(r.starts_with("250 "), "{r}");
    let r = c.cmd(&format!("RCPT TO:<{GERMAN}>")).await;
    assert!(r.starts_with("553 5.6.7 "), "{r}");
    c.cmd("RSET").await;

    let r = c.cmd("MAIL FROM:<shop@example.com> SMTPUTF8").await;
    assert!(r.starts_with("250 "), "{r}");
    for rcpt in [CHINESE, GERMAN, ADA] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert!(r.starts_with("250 "), "RCPT {rcpt}: {r}");
    }
    let r = c.cmd("DATA").await;
    assert!(r.starts_with("354 "), "{r}");
    c.write(b"From: shop@example.com\r\nTo: ada@xn--bcher-kva.example\r\nSubject: Hi\r\n\r\nHello\r\n.\r\n")
        .await;
    let r = c.reply().await;
    assert!(r.starts_with("250 "), "{r}");
    let id = queued_id(r.trim_start_matches("250 "));

    // Trusted clients send into project `internal`.
    let internal = app.create_key("internal", "messages", false).await;
    let email = eventually("a partial delivery", WAIT, async || {
        let email = app.get_email_as(&internal, &id).await;
        if email.status == "partially_delivered" {
            Ok(email)
        } else {
            Err(format!("{email:#}"))
        }
    })
    .await;
    for r in &email.recipients {
        if r.email == ADA {
            assert_eq!(r.status, "delivered");
        } else {
            assert_eq!(r.status, "bounced", "{email:#}");
            assert_eq!(r.attempts, 1, "bounced at once, never deferred");
            assert_eq!(r.enhanced_code.as_deref(), Some("5.6.7"));
        }
    }
    assert!(email.events_of("deferred").is_empty(), "{email:#}");
    let received = upstream.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1, "{received:#?}");
    let ada = received_for(&received, "ada@xn--bcher-kva.example");
    assert_eq!(ada.mail_from, "shop@example.com");
    assert!(!ada.mail_params.contains(&"SMTPUTF8".into()), "{ada:?}");
}
