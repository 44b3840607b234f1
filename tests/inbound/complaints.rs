//! Complaints (ARF feedback reports) and what must change nothing: a report with a forged or
//! edited token, one for another project's message, mail that is not a report; delay notices,
//! recorded once per recipient.

use serde_json::json;

use super::{BOUNCES, hand_in, inbound_app, inbound_log, operator_token};
use crate::support::{
    app::TestApp, smtp_server::TestSmtpServer, webhook_receiver::WebhookReceiver,
};

/// Sends one message to `to` through `smtp`, drains, and returns its id and return path.
async fn delivered(app: &TestApp, smtp: &TestSmtpServer, to: &str) -> (String, String) {
    let before = smtp.received().len();
    let id = app
        .send_ok(&json!({"from": "news@example.com", "to": to, "subject": "News", "text": "Hi"}))
        .await;
    app.drain().await;
    assert_eq!(app.get_email(&id).await.status, "delivered");
    let return_path = smtp.received()[before].mail_from.clone();
    (id, return_path)
}

fn arf(reported_to: &str, rcpt: &str, return_path: &str) -> String {
    format!(
        "From: fbl@isp.example\r\n\
To: {reported_to}\r\n\
Subject: Abuse report\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"ARF\"\r\n\
\r\n\
--ARF\r\n\
Content-Type: text/plain\r\n\
\r\n\
A recipient marked this message as spam.\r\n\
--ARF\r\n\
Content-Type: message/feedback-report\r\n\
\r\n\
Feedback-Type: abuse\r\n\
User-Agent: ExampleFBL/1.0\r\n\
Version: 1\r\n\
Original-Rcpt-To: {rcpt}\r\n\
Source-IP: 192.0.2.25\r\n\
\r\n\
--ARF\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Return-Path: <{return_path}>\r\n\
From: news@example.com\r\n\
To: {rcpt}\r\n\
Subject: News\r\n\
\r\n\
Hi\r\n\
--ARF--\r\n"
    )
}

fn dsn(to: &str, rcpt: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.org\r\n\
To: {to}\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"D\"\r\n\
\r\n\
--D\r\n\
Content-Type: text/plain\r\n\
\r\n\
Your message could not be delivered.\r\n\
--D\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.org\r\n\
\r\n\
Final-Recipient: rfc822; {rcpt}\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\
\r\n\
--D--\r\n"
    )
}

#[tokio::test]
async fn a_feedback_report_is_a_complaint_and_suppresses_the_address() {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = inbound_app().relaying_to(&smtp).start().await;
    let (_, secret) = app
        .create_webhook(&json!({"url": receiver.url("/hook"), "events": ["email.complained"]}))
        .await;
    let (id, return_path) = delivered(&app, &smtp, "ada@example.org").await;

    let report = arf(&return_path, "ada@example.org", &return_path);
    hand_in(
        app.inbound_addr.unwrap(),
        Some("fbl@isp.example"),
        &return_path,
        report.as_bytes(),
    )
    .await
    .expect("the report is accepted");
    app.drain().await;

    let email = app.get_email(&id).await;
    assert_eq!(email.status, "complained", "{email:#}");
    assert_eq!(
        email.recipient_statuses(),
        [("ada@example.org".to_string(), "complained".to_string())]
    );
    let complained = email.events_of("complained");
    assert_eq!(complained[0].data["feedback"]["type"], "abuse");
    assert_eq!(
        complained[0].data["feedback"]["user_agent"],
        "ExampleFBL/1.0"
    );
    assert_eq!(
        app.get_suppression("ada@example.org").await["reason"],
        "complaint"
    );
    let got = receiver
        .wait_until(super::WAIT, |got| !got.is_empty())
        .await;
    assert_eq!(got[0].event_type(), "email.complained");
    got[0].verify(&secret).expect("signed");
    assert_eq!(got[0].json()["data"]["recipient"], "ada@example.org");

    // A feedback loop that reports to its own address still names the recipient through
    // the original's Return-Path.
    let (id2, return_path2) = delivered(&app, &smtp, "bob@example.org").await;
    let report = arf(&format!("fbl@{BOUNCES}"), "bob@example.org", &return_path2);
    hand_in(
        app.inbound_addr.unwrap(),
        Some("fbl@isp.example"),
        &format!("fbl@{BOUNCES}"),
        report.as_bytes(),
    )
    .await
    .unwrap();
    app.drain().await;
    assert_eq!(app.get_email(&id2).await.status, "complained");
}

#[tokio::test]
async fn forged_foreign_and_non_reports_change_nothing() {
    let smtp = TestSmtpServer::start().await;
    let app = inbound_app().relaying_to(&smtp).start().await;
    let inbound = app.inbound_addr.unwrap();
    let (id, return_path) = delivered(&app, &smtp, "ada@example.org").await;

    // 1. The token edited (another recipient id with this MAC) and 2. a made-up token: both
    // refused at RCPT (`a_bad_or_unknown_return_path_is_refused_at_rcpt_and_never_stored`).
    let (local, _) = return_path.split_once('@').unwrap();
    let parts: Vec<&str> = local.splitn(3, '-').collect();
    let other_id: i64 = parts[1].parse::<i64>().unwrap() + 1;
    let edited = format!("b-{other_id}-{}@{BOUNCES}", parts[2]);
    let made_up = format!("b-1-0123456789abcdef@{BOUNCES}");
    for bad in [&edited, &made_up] {
        let err = hand_in(inbound, None, bad, dsn(bad, "ada@example.org").as_bytes())
            .await
            .expect_err(bad);
        assert!(err.is_permanent(), "{err}");
    }
    // 3. The right token, but the DSN is about someone else.
    hand_in(
        inbound,
        None,
        &return_path,
        dsn(&return_path, "eve@example.org").as_bytes(),
    )
    .await
    .unwrap();
    // 4. Not a report at all: an auto-reply to the return path.
    let reply = "From: ada@example.org\r\nTo: news@example.com\r\nSubject: Out of office\r\n\r\nBack Monday.\r\n";
    hand_in(
        inbound,
        Some("ada@example.org"),
        &return_path,
        reply.as_bytes(),
    )
    .await
    .unwrap();

    // 5. Project B has its own bounce domain; a report there with project A's token.
    let token = operator_token();
    let other_key = app.create_key("other", "send,messages", false).await;
    let (status, body) = app
        .call_as(
            &token,
            reqwest::Method::PATCH,
            "/v1/projects/other",
            Some(json!({"bounce_domain": "bounces.other.test"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bounce_domain"], "bounces.other.test");
    let at_b = format!("{local}@bounces.other.test");
    let err = hand_in(
        inbound,
        None,
        &at_b,
        dsn(&at_b, "ada@example.org").as_bytes(),
    )
    .await
    .expect_err("refused at RCPT: not this token's bounce domain");
    assert!(err.is_permanent(), "{err}");
    // 6. A feedback report to a bounce mailbox whose enclosed return path is edited.
    let report = arf(&format!("fbl@{BOUNCES}"), "ada@example.org", &edited);
    hand_in(
        inbound,
        Some("fbl@isp.example"),
        &format!("fbl@{BOUNCES}"),
        report.as_bytes(),
    )
    .await
    .unwrap();
    app.drain().await;

    let email = app.get_email(&id).await;
    assert_eq!(email.status, "delivered", "{email:#}");
    assert!(email.events_of("bounced").is_empty());
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            "/v1/suppressions/ada@example.org",
            None,
        )
        .await;
    assert_eq!(status, 404, "nothing was suppressed");

    let mut kinds: Vec<String> = inbound_log(&app)
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["forged", "forged", "not_a_report"],
        "each one accepted is logged for operators"
    );
    // The log is the operator's: a project key gets 403.
    let (status, _) = app
        .call_as(&other_key, reqwest::Method::GET, "/v1/inbound", None)
        .await;
    assert_eq!(status, 403);

    // A real bounce to project B's domain for B's own mail works there.
    let smtp_b = &smtp;
    let b_mail = app
        .call_as(
            &other_key,
            reqwest::Method::POST,
            "/v1/emails",
            Some(json!({"from": "b@example.com", "to": "zed@example.org", "subject": "x", "text": "x"})),
        )
        .await;
    assert_eq!(b_mail.0, 202, "{}", b_mail.1);
    app.drain().await;
    let rp_b = smtp_b.received().last().unwrap().mail_from.clone();
    assert!(rp_b.ends_with("@bounces.other.test"), "{rp_b}");
    hand_in(
        inbound,
        None,
        &rp_b,
        dsn(&rp_b, "zed@example.org").as_bytes(),
    )
    .await
    .unwrap();
    app.drain().await;
    let (_, b_email) = app
        .call_as(
            &other_key,
            reqwest::Method::GET,
            &format!("/v1/emails/{}", b_mail.1["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(b_email["status"], "bounced", "{b_email:#}");
}

#[tokio::test]
async fn a_delay_notice_is_an_event_and_changes_no_status() {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = inbound_app().relaying_to(&smtp).start().await;
    app.create_webhook(&json!({"url": receiver.url("/hook"), "events": ["email.delayed"]}))
        .await;
    let (id, return_path) = delivered(&app, &smtp, "ada@example.org").await;
    let delayed = dsn(&return_path, "ada@example.org")
        .replace("Action: failed", "Action: delayed")
        .replace("Status: 5.1.1", "Status: 4.4.7")
        .replace("550 5.1.1 no such user", "450 4.4.7 still trying");
    hand_in(
        app.inbound_addr.unwrap(),
        None,
        &return_path,
        delayed.as_bytes(),
    )
    .await
    .unwrap();
    app.drain().await;
    let email = app.get_email(&id).await;
    assert_eq!(email.status, "delivered");
    let events = email.events_of("delayed");
    assert_eq!(events.len(), 1, "{email:#}");
    assert_eq!(events[0].enhanced_code.as_deref(), Some("4.4.7"));
    let got = receiver
        .wait_until(super::WAIT, |got| !got.is_empty())
        .await;
    assert_eq!(got[0].event_type(), "email.delayed");
    assert_eq!(got[0].json()["data"]["dsn"]["action"], "delayed");
    assert_eq!(inbound_log(&app).await[0]["kind"], "delay");
}

/// Issue 25: MTAs repeat a delay notice while they retry, and each copy was a new `delayed`
/// event and webhook. Now the first is recorded and the copies are only logged.
#[tokio::test]
async fn a_repeated_delay_notice_is_one_event() {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = inbound_app().relaying_to(&smtp).start().await;
    let (hook, _) = app
        .create_webhook(&json!({"url": receiver.url("/hook"), "events": ["email.delayed"]}))
        .await;
    let (id, return_path) = delivered(&app, &smtp, "ada@example.org").await;
    let delayed = dsn(&return_path, "ada@example.org")
        .replace("Action: failed", "Action: delayed")
        .replace("Status: 5.1.1", "Status: 4.4.7")
        .replace("550 5.1.1 no such user", "450 4.4.7 still trying");
    // Three copies: two handed in together (processed at once), then one more later.
    for _ in 0..2 {
        hand_in(
            app.inbound_addr.unwrap(),
            None,
            &return_path,
            delayed.as_bytes(),
        )
        .await
        .unwrap();
    }
    app.drain().await;
    hand_in(
        app.inbound_addr.unwrap(),
        None,
        &return_path,
        delayed.as_bytes(),
    )
    .await
    .unwrap();
    app.drain().await;

    let email = app.get_email(&id).await;
    assert_eq!(email.events_of("delayed").len(), 1, "{email:#}");
    assert_eq!(email.status, "delivered");
    let deliveries = app.webhook_deliveries(&hook).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
    let log = inbound_log(&app).await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|e| e["kind"] == "delay"), "{log:#?}");
    let repeats = log
        .iter()
        .filter(|e| {
            e["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("already reported")
        })
        .count();
    assert!(repeats >= 1, "{log:#?}");
}
