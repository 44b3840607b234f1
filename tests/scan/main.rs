//! Content scanning with the real daemons: a private rspamd (built-in rules) and a private
//! clamd whose signature database holds the EICAR test file, both started by `scripts/test`
//! (`MAILGATE_TEST_RSPAMD_URL`, `MAILGATE_TEST_CLAMD_ADDR`).

#[path = "../support/mod.rs"]
mod support;

mod once;

use std::time::Duration;

use base64::Engine;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor, address::Envelope};
use mailgate::Config;
use serde_json::{Value, json};

use support::{
    app::{TestApp, TestAppBuilder},
    smtp_server::TestSmtpServer,
    webhook_receiver::WebhookReceiver,
};

/// rspamd's test pattern: any rspamd rejects mail that carries it.
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
/// The standard antivirus test file.
const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// Nothing listens here: a scanner that is down.
const DOWN: &str = "127.0.0.1:9";
const WAIT: Duration = Duration::from_secs(20);

fn scanners() -> (String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: scripts/test starts private rspamd and clamd (apt-get install rspamd clamav clamav-daemon) and sets it"
            )
        })
    };
    (
        var("MAILGATE_TEST_RSPAMD_URL"),
        var("MAILGATE_TEST_CLAMD_ADDR"),
    )
}

/// Scanning on with both daemons, relaying to `smtp`; SMTP from loopback without AUTH.
fn scanning_app(smtp: &TestSmtpServer) -> TestAppBuilder<'static> {
    let (rspamd, clamd) = scanners();
    TestApp::builder()
        .relaying_to(smtp)
        .webhooks_to_loopback()
        .configure(|c| {
            c.scan.rspamd_url = Some(rspamd);
            c.scan.clamd_addr = Some(clamd);
            c.scan.timeout_ms = 3000;
            c.smtp.trusted_networks = vec!["127.0.0.0/8".into()];
            c.smtp.trusted_project = Some("acme".into());
        })
}

fn mail(text: &str) -> Value {
    json!({"from": "app@example.com", "to": "ada@example.org", "subject": "Hello", "text": text})
}

fn with_eicar() -> Value {
    let mut m = mail("See the attachment.");
    m["attachments"] = json!([{
        "filename": "test.com",
        "content": base64::engine::general_purpose::STANDARD.encode(EICAR),
        "content_type": "application/octet-stream"
    }]);
    m
}

/// Submits `raw` over SMTP from loopback (a trusted network: no AUTH).
async fn smtp_send(app: &TestApp, raw: &str) -> Result<String, lettre::transport::smtp::Error> {
    let addr = app.smtp_addr.unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(addr.port())
        .build();
    let envelope = Envelope::new(
        Some("app@example.com".parse().unwrap()),
        vec!["ada@example.org".parse().unwrap()],
    )
    .unwrap();
    transport
        .send_raw(&envelope, raw.as_bytes())
        .await
        .map(|r| r.message().collect::<Vec<_>>().join(" "))
}

#[tokio::test]
async fn clean_mail_passes_with_its_verdict_kept() {
    let smtp = TestSmtpServer::start().await;
    let app = scanning_app(&smtp).start().await;
    let id = app.send_ok(&mail("Thanks for your order #1042.")).await;
    app.drain().await;
    let email = app.get_email(&id).await;
    assert_eq!(email.status, "delivered", "{email:#}");
    assert!(email.scan["rspamd"]["action"].is_string(), "{email:#}");
    assert_eq!(email.scan["rspamd"]["spam"], false);
    assert_eq!(email.scan["clamd"]["virus"], Value::Null);
    assert_eq!(smtp.received().len(), 1);
    assert!(!smtp.received()[0].text().contains("X-Spam-Status"));
}

#[tokio::test]
async fn spam_and_viruses_are_rejected_over_http_and_smtp_and_nothing_is_stored() {
    let smtp = TestSmtpServer::start().await;
    let app = scanning_app(&smtp).start().await;
    let (status, problem) = app
        .call(reqwest::Method::POST, "/v1/emails", Some(mail(GTUBE)))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "content_rejected");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("rspamd") && detail.contains("GTUBE"),
        "{detail}"
    );

    let (status, problem) = app
        .call(reqwest::Method::POST, "/v1/emails", Some(with_eicar()))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("clamd: virus"),
        "{problem}"
    );

    let spam =
        format!("From: app@example.com\r\nTo: ada@example.org\r\nSubject: hi\r\n\r\n{GTUBE}\r\n");
    let err = smtp_send(&app, &spam).await.expect_err("refused");
    assert!(err.is_permanent(), "{err}");
    assert!(
        err.to_string().contains("554") || err.status().is_some_and(|c| c.to_string() == "554"),
        "{err}"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(EICAR);
    let virus = format!(
        "From: app@example.com\r\nTo: ada@example.org\r\nSubject: hi\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"X\"\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
--X\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"t.com\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--X--\r\n"
    );
    let err = smtp_send(&app, &virus).await.expect_err("refused");
    assert!(err.to_string().contains("virus"), "{err}");
    assert!(
        err.status().is_some_and(|c| c.to_string() == "550"),
        "{err}"
    );

    assert_eq!(
        app.list_emails("").await.data.len(),
        0,
        "nothing rejected is stored"
    );
    app.drain().await;
    assert!(smtp.received().is_empty());
}

#[tokio::test]
async fn held_mail_waits_and_is_released_or_discarded() {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = scanning_app(&smtp)
        .configure(|c| c.scan.spam = mailgate::config::ScanAction::Hold)
        .start()
        .await;
    app.create_webhook(&json!({"url": receiver.url("/h"), "events": ["email.held", "email.delivered", "email.cancelled"]}))
        .await;
    let first = app.send_ok(&mail(GTUBE)).await;
    let second = app.send_ok(&mail(GTUBE)).await;
    app.drain().await;
    for id in [&first, &second] {
        let email = app.get_email(id).await;
        assert_eq!(email.status, "held", "{email:#}");
        assert_eq!(email.recipients[0].status, "held");
        let held = &email.events[0];
        assert_eq!(held.kind, "held");
        assert!(held.detail.as_deref().unwrap().contains("GTUBE"), "{held}");
    }
    assert!(smtp.received().is_empty(), "held mail is not relayed");
    assert_eq!(app.list_emails("status=held").await.data.len(), 2);

    // Release one: it goes out. Discard the other: it never does.
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/emails/{first}/release"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/emails/{second}/discard"),
            Some(json!({"reason": "spam from a compromised account"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    app.drain().await;
    assert_eq!(app.get_email(&first).await.status, "delivered");
    let discarded = app.get_email(&second).await;
    assert_eq!(discarded.status, "cancelled");
    let last = discarded.events.last().unwrap().clone();
    assert!(
        last.detail
            .as_deref()
            .unwrap()
            .contains("compromised account"),
        "{last}"
    );
    assert_eq!(smtp.received().len(), 1);
    // Nothing is held any more.
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/emails/{first}/release"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "not_held");

    let got = receiver
        .wait_until(WAIT, |got| {
            got.iter()
                .filter(|r| r.event_type() == "email.held")
                .count()
                == 2
                && got.iter().any(|r| r.event_type() == "email.delivered")
                && got.iter().any(|r| r.event_type() == "email.cancelled")
        })
        .await;
    assert!(!got.is_empty());

    // Over SMTP too: the reply says it is held.
    let spam =
        format!("From: app@example.com\r\nTo: ada@example.org\r\nSubject: hi\r\n\r\n{GTUBE}\r\n");
    let reply = smtp_send(&app, &spam).await.expect("accepted, held");
    assert!(reply.contains("held by the content policy"), "{reply}");
}

#[tokio::test]
async fn tag_adds_headers_to_the_stored_mime() {
    let smtp = TestSmtpServer::start().await;
    let app = scanning_app(&smtp)
        .configure(|c| {
            c.scan.spam = mailgate::config::ScanAction::Tag;
            c.scan.virus = mailgate::config::ScanAction::Tag;
        })
        .start()
        .await;
    let id = app.send_ok(&mail(GTUBE)).await;
    let virus = app.send_ok(&with_eicar()).await;
    app.drain().await;
    let source = app
        .get_source_raw(&app.key, &id)
        .await
        .text()
        .await
        .unwrap();
    assert!(source.starts_with("X-Spam-Status: Yes, score="), "{source}");
    assert!(
        source.contains("tests=GTUBE") && source.contains("\r\nX-Spam-Score: "),
        "{source}"
    );
    let source = app
        .get_source_raw(&app.key, &virus)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        source.contains("X-Virus-Status: Infected ("),
        "{source}\n{:#}",
        app.get_email(&virus).await.scan
    );
    assert_eq!(app.get_email(&id).await.status, "delivered");
    assert!(
        smtp.received()
            .iter()
            .all(|m| m.text().contains("X-Spam-Status") || m.text().contains("X-Virus-Status"))
    );
}

#[tokio::test]
async fn a_scanner_down_follows_on_error_and_nothing_accepted_is_lost() {
    let smtp = TestSmtpServer::start().await;
    let down = |c: &mut Config| {
        c.scan.rspamd_url = Some(format!("http://{DOWN}"));
        c.scan.clamd_addr = Some(DOWN.into());
        c.scan.timeout_ms = 1000;
    };
    // fail_open (the default): accepted unscanned, and delivered.
    let app = scanning_app(&smtp).configure(down).start().await;
    let id = app.send_ok(&mail("hello")).await;
    app.drain().await;
    let email = app.get_email(&id).await;
    assert_eq!(email.status, "delivered");
    assert_eq!(
        email.scan["errors"].as_array().unwrap().len(),
        2,
        "{email:#}"
    );

    // fail_closed: 503 over HTTP, 451 over SMTP; the client keeps the message.
    let operator = {
        let secret: secrecy::SecretString = support::app::JWT_SECRET.to_string().into();
        mailgate::service::gate::mint_operator_token(&secret, Duration::from_secs(60)).unwrap()
    };
    let (status, body) = app
        .call_as(
            &operator,
            reqwest::Method::PATCH,
            "/v1/projects/acme",
            Some(json!({"scan_on_error": "fail_closed"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scan_on_error"], "fail_closed");
    let (status, problem) = app
        .call(reqwest::Method::POST, "/v1/emails", Some(mail("hello")))
        .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "unavailable");
    let err = smtp_send(&app, "From: app@example.com\r\nSubject: x\r\n\r\nx\r\n")
        .await
        .expect_err("deferred");
    assert!(err.is_transient(), "{err}");

    // hold: accepted and held until someone decides.
    let (status, _) = app
        .call_as(
            &operator,
            reqwest::Method::PATCH,
            "/v1/projects/acme",
            Some(json!({"scan_on_error": "hold"})),
        )
        .await;
    assert_eq!(status, 200);
    let id = app.send_ok(&mail("hello")).await;
    let email = app.get_email(&id).await;
    assert_eq!(email.status, "held");
    assert!(
        email.events[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("not scanned"),
        "{email:#}"
    );
    // The operator releases it.
    let (status, body) = app
        .call_as(
            &operator,
            reqwest::Method::POST,
            &format!("/v1/emails/{id}/release"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.drain().await;
    assert_eq!(app.get_email(&id).await.status, "delivered");
    assert_eq!(smtp.received().len(), 2, "both accepted messages arrived");
}

#[tokio::test]
async fn held_mail_expires_after_hold_hours() {
    let smtp = TestSmtpServer::start().await;
    let app = scanning_app(&smtp)
        .configure(|c| c.scan.spam = mailgate::config::ScanAction::Hold)
        .start()
        .await;
    let old = app.send_ok(&mail(GTUBE)).await;
    let fresh = app.send_ok(&mail(GTUBE)).await;
    sqlx::query("UPDATE messages SET created_at = now() - interval '73 hours' WHERE id = $1::uuid")
        .bind(&old)
        .execute(&app.pool)
        .await
        .unwrap();
    let expired = mailgate::retention::expire_held(&app.pool, 72, 100)
        .await
        .unwrap();
    assert_eq!(expired, 1);
    let email = app.get_email(&old).await;
    assert_eq!(email.status, "cancelled");
    let last = email.events.last().unwrap().clone();
    assert!(
        last.detail
            .as_deref()
            .unwrap()
            .contains("hold expired after 72 h"),
        "{last}"
    );
    assert_eq!(app.get_email(&fresh).await.status, "held");
}
