//! Internationalized addresses over HTTP (RFC 6530–6533, IDNA): domains travel in A-labels,
//! a UTF-8 local part goes with SMTPUTF8 when the relay offers it and bounces at once with
//! 5.6.7 when it does not.

use std::time::Duration;

use serde_json::json;

use mailgate::config::RelayConfig;

use crate::support::{
    api::{Accepted, Email},
    app::{TestApp, spawn_app_relaying_to},
    smtp_server::{ReceivedMessage, SmtpServerOptions, TestSmtpServer},
};

const WAIT: Duration = Duration::from_secs(20);
const CHINESE: &str = "用户@例子.中国";
const GERMAN: &str = "josé@bücher.example";
const ADA: &str = "ada@bücher.example";

async fn relay(smtputf8: bool) -> TestSmtpServer {
    TestSmtpServer::start_with(SmtpServerOptions {
        smtputf8,
        ..Default::default()
    })
    .await
}

/// The message the relay received for `rcpt` (as it appeared in RCPT TO).
fn received_for(smtp: &TestSmtpServer, rcpt: &str) -> ReceivedMessage {
    let all = smtp.received();
    all.iter()
        .find(|m| m.rcpt_to == [rcpt])
        .cloned()
        .unwrap_or_else(|| panic!("nothing received for {rcpt}: {all:#?}"))
}

fn header<'a>(text: &'a str, name: &str) -> &'a str {
    let head = text.split("\r\n\r\n").next().unwrap();
    head.split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} header in {head}"))
}

fn recipient<'a>(email: &'a Email, address: &str) -> &'a crate::support::api::Recipient {
    email
        .recipients
        .iter()
        .find(|r| r.email == address)
        .unwrap_or_else(|| panic!("no recipient {address} in {email:#}"))
}

#[tokio::test]
async fn a_unicode_domain_goes_in_a_labels_and_needs_no_smtputf8() {
    let smtp = relay(false).await;
    let app = spawn_app_relaying_to(&smtp).await;
    let id = app
        .send_ok(&json!({
            "from": "Shop <shop@bücher.example>",
            "to": {"email": ADA, "name": "Ada Lovelace"},
            "subject": "Hi",
            "text": "Hello"
        }))
        .await;
    let email = app.wait_for_status(&id, &["delivered"], WAIT).await;
    // The API reports the address as the app wrote it.
    assert_eq!(email.recipients[0].email, ADA);
    let got = received_for(&smtp, "ada@xn--bcher-kva.example");
    assert_eq!(got.mail_from, "shop@xn--bcher-kva.example");
    assert!(!got.mail_params.contains(&"SMTPUTF8".into()), "{got:?}");
    // Without SMTPUTF8 the header section stays ASCII: A-label domains, RFC 2047 names.
    let text = got.text();
    let head = text.split("\r\n\r\n").next().unwrap();
    assert!(head.is_ascii(), "{head}");
    assert_eq!(
        header(&text, "To"),
        "\"Ada Lovelace\" <ada@xn--bcher-kva.example>"
    );
    assert_eq!(header(&text, "From"), "Shop <shop@xn--bcher-kva.example>");
    assert!(
        header(&text, "Message-ID").ends_with("@xn--bcher-kva.example>"),
        "{text}"
    );
}

#[tokio::test]
async fn utf8_local_parts_go_with_smtputf8_when_the_relay_offers_it() {
    let smtp = relay(true).await;
    let app = spawn_app_relaying_to(&smtp).await;
    for to in [CHINESE, GERMAN] {
        let id = app
            .send_ok(&json!({"from": "app@example.com", "to": to, "subject": "Hi", "text": "x"}))
            .await;
        let email = app.wait_for_status(&id, &["delivered"], WAIT).await;
        assert_eq!(email.recipients[0].email, to);
        assert_eq!(email.recipients[0].attempts, 1);
    }
    let chinese = received_for(&smtp, "用户@xn--fsqu00a.xn--fiqs8s");
    assert!(
        chinese.mail_params.contains(&"SMTPUTF8".into()),
        "{chinese:?}"
    );
    // With SMTPUTF8 the header keeps the address as written (RFC 6532).
    assert_eq!(header(&chinese.text(), "To"), CHINESE);
    let german = received_for(&smtp, "josé@xn--bcher-kva.example");
    assert!(
        german.mail_params.contains(&"SMTPUTF8".into()),
        "{german:?}"
    );
    assert_eq!(header(&german.text(), "To"), GERMAN);

    // A copy for an ASCII recipient whose headers hold UTF-8 (RFC 6532) goes with SMTPUTF8
    // too, since this relay offers it.
    let id = app
        .send_ok(&json!({"from": "app@example.com", "to": [CHINESE, "bob@example.com"], "subject": "Hi", "text": "x"}))
        .await;
    app.wait_for_status(&id, &["delivered"], WAIT).await;
    let bob = received_for(&smtp, "bob@example.com");
    assert_eq!(bob.mail_from, "app@example.com");
    assert!(bob.mail_params.contains(&"SMTPUTF8".into()), "{bob:?}");
    assert!(
        header(&bob.text(), "To").contains(CHINESE),
        "{}",
        bob.text()
    );
}

#[tokio::test]
async fn a_relay_without_smtputf8_hands_a_utf8_address_to_the_next_in_the_pool() {
    let plain = relay(false).await;
    let utf8 = relay(true).await;
    let config = |addr: &TestSmtpServer| RelayConfig {
        pool_size: Some(2),
        ..RelayConfig::at(format!("smtp://{}?tls=none", addr.addr).into())
    };
    let (first, second) = (config(&plain), config(&utf8));
    let app = TestApp::builder()
        .configure(|c| {
            c.relays.insert("plain".into(), first);
            c.relays.insert("utf8".into(), second);
            c.pools
                .insert("default".into(), vec!["plain".into(), "utf8".into()]);
        })
        .start()
        .await;
    let id = app
        .send_ok(&json!({"from": "app@example.com", "to": GERMAN, "subject": "Hi", "text": "x"}))
        .await;
    let email = app.wait_for_status(&id, &["delivered"], WAIT).await;
    let r = &email.recipients[0];
    assert_eq!(r.relay_host, Some(utf8.addr.to_string()));
    assert_eq!(r.attempts, 1);
    assert!(plain.received().is_empty());
    let got = received_for(&utf8, "josé@xn--bcher-kva.example");
    assert!(got.mail_params.contains(&"SMTPUTF8".into()), "{got:?}");
}

#[tokio::test]
async fn utf8_local_parts_bounce_at_once_with_5_6_7_when_the_relay_lacks_smtputf8() {
    let smtp = relay(false).await;
    let app = spawn_app_relaying_to(&smtp).await;
    let id = app
        .send_ok(&json!({
            "from": "app@example.com",
            "to": [CHINESE, GERMAN, ADA],
            "subject": "Hi",
            "text": "x"
        }))
        .await;
    let email = app
        .wait_for_status(&id, &["partially_delivered"], WAIT)
        .await;
    assert_eq!(recipient(&email, ADA).status, "delivered");
    let host = smtp.addr.to_string();
    for to in [CHINESE, GERMAN] {
        let r = recipient(&email, to);
        assert_eq!(r.status, "bounced", "{email:#}");
        assert_eq!(
            r.attempts, 1,
            "bounced at the first attempt, never deferred"
        );
        assert_eq!(r.enhanced_code.as_deref(), Some("5.6.7"));
        // No SMTP code: the relay was never asked.
        assert_eq!(r.smtp_code, None);
        let bounce = email
            .events
            .iter()
            .find(|e| e.kind == "bounced" && e.recipient == to)
            .unwrap_or_else(|| panic!("no bounce event for {to}: {email:#}"));
        let detail = bounce.detail.as_deref().unwrap();
        assert!(
            detail.contains("SMTPUTF8") && detail.contains(&host),
            "{detail}"
        );
    }
    assert!(
        email.events_of("deferred").is_empty(),
        "never deferred: {email:#}"
    );
    // Only the ASCII-envelope copy reached the relay.
    let all = smtp.received();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].rcpt_to, ["ada@xn--bcher-kva.example"]);
    // Its headers hold the UTF-8 addresses; without SMTPUTF8 they go as 8-bit data.
    assert!(!all[0].mail_params.contains(&"SMTPUTF8".into()), "{all:?}");
    // The relay's lack says nothing about the mailbox: the address is not suppressed.
    let again: Accepted = app
        .send_email(&json!({"from": "app@example.com", "to": GERMAN, "subject": "Hi", "text": "x"}))
        .await;
    assert_eq!(again.recipients[0].status, "queued");
}

#[tokio::test]
async fn an_invalid_internationalized_domain_is_refused_naming_the_field() {
    let smtp = relay(true).await;
    let app = spawn_app_relaying_to(&smtp).await;
    for (body, field) in [
        (
            json!({"from": "app@example.com", "to": ["ok@example.com", "a@bü_cher.example"], "subject": "s", "text": "t"}),
            "to[1]",
        ),
        (
            json!({"from": "app@例子", "to": "ok@example.com", "subject": "s", "text": "t"}),
            "from",
        ),
    ] {
        let response = app.post_email_raw(&app.key, &body).await;
        assert_eq!(response.status(), 422);
        let problem: serde_json::Value = response.json().await.unwrap();
        let errors = problem["errors"].as_array().unwrap();
        assert_eq!(errors[0]["field"], field, "{problem}");
        let message = errors[0]["message"].as_str().unwrap();
        assert!(
            message.contains("domain") || message.contains("top-level"),
            "{message}"
        );
    }
}
