//! Webhooks end to end: real mail events reach a real HTTP receiver, signed so that the
//! Standard Webhooks library accepts them; retries, 410, disabling, SSRF, rotation, replay.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    api::{Webhook, WebhookDelivery},
    app::{TestApp, TestAppBuilder, expect},
    eventually,
    smtp_server::TestSmtpServer,
    webhook_receiver::{Received, Reply, WebhookReceiver},
};

const WAIT: Duration = Duration::from_secs(20);

/// A mailgate for webhook tests: loopback receivers allowed, fast retries, short timeouts.
fn webhook_app() -> TestAppBuilder<'static> {
    TestApp::builder().webhooks_to_loopback().configure(|c| {
        c.webhooks.retry_schedule_secs = vec![0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
        c.webhooks.timeout_secs = 2.0;
        c.webhooks.runner.lease_secs = 10;
    })
}

/// Polls the delivery log until `done` holds for it.
async fn wait_for_deliveries(
    app: &TestApp,
    webhook: &str,
    done: impl Fn(&[WebhookDelivery]) -> bool,
) -> Vec<WebhookDelivery> {
    eventually("the deliveries", WAIT, async || {
        let list = app.webhook_deliveries(webhook).await;
        if done(&list) {
            Ok(list)
        } else {
            Err(format!("{list:#?}"))
        }
    })
    .await
}

async fn wait_for_webhook(
    app: &TestApp,
    webhook: &str,
    done: impl Fn(&Webhook) -> bool,
) -> Webhook {
    eventually("the endpoint", WAIT, async || {
        let json = app.get_webhook(webhook).await;
        if done(&json) {
            Ok(json)
        } else {
            Err(format!("{json:#}"))
        }
    })
    .await
}

fn mail(to: Value) -> Value {
    json!({"from": "app@example.com", "to": to, "subject": "Hello", "text": "Hi"})
}

fn find<'a>(got: &'a [Received], event: &str, recipient: &str) -> Option<&'a Received> {
    got.iter().find(|r| {
        let j = r.json();
        j["type"] == event && j["data"]["recipient"] == recipient
    })
}

#[tokio::test]
async fn every_email_event_reaches_the_receiver_signed() {
    let smtp = TestSmtpServer::start().await;
    smtp.rcpt_reply("busy@example.com", 451, "4.3.0 try later", Some(1));
    smtp.rcpt_reply("gone@example.com", 550, "5.1.1 no such user", None);
    smtp.rcpt_reply("full@example.com", 452, "4.2.2 mailbox full", None);
    let receiver = WebhookReceiver::start().await;
    let app = webhook_app()
        .relaying_to(&smtp)
        .configure(|c| c.delivery.max_attempts = 2)
        .start()
        .await;
    let (_, secret) = app
        .create_webhook(&json!({"url": receiver.url("/hook"), "description": "all of it"}))
        .await;
    app.add_suppression(&json!({"email": "sup@example.com"}))
        .await;

    let mut body = mail(json!([
        "ok@example.com",
        "busy@example.com",
        "gone@example.com",
        "full@example.com",
        "sup@example.com"
    ]));
    body["tags"] = json!(["welcome"]);
    body["metadata"] = json!({"user_id": "42"});
    let id = app.send_ok(&body).await;
    let mut later = mail(json!("later@example.com"));
    later["send_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    let scheduled = app.send_ok(&later).await;
    assert_eq!(app.cancel_email_raw(&scheduled).await.status(), 200);

    let expected = [
        ("email.queued", "ok@example.com"),
        ("email.queued", "busy@example.com"),
        ("email.queued", "gone@example.com"),
        ("email.queued", "full@example.com"),
        ("email.suppressed", "sup@example.com"),
        ("email.delivered", "ok@example.com"),
        ("email.deferred", "busy@example.com"),
        ("email.delivered", "busy@example.com"),
        ("email.bounced", "gone@example.com"),
        ("email.deferred", "full@example.com"),
        ("email.failed", "full@example.com"),
        ("email.queued", "later@example.com"),
        ("email.cancelled", "later@example.com"),
    ];
    let got = receiver
        .wait_until(WAIT, |got| {
            expected.iter().all(|(t, r)| find(got, t, r).is_some())
        })
        .await;

    // Every request is signed and verifies with an independent implementation.
    let mut ids = HashSet::new();
    for r in &got {
        r.verify(&secret)
            .unwrap_or_else(|e| panic!("{e}: {}", r.event_type()));
        assert_eq!(r.header("content-type"), "application/json");
        assert!(r.header("webhook-signature").starts_with("v1,"));
        assert!(
            ids.insert(r.header("webhook-id").to_string()),
            "one id per event"
        );
        assert!(r.verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    }

    let delivered = find(&got, "email.delivered", "ok@example.com")
        .unwrap()
        .json();
    assert!(delivered["timestamp"].as_str().unwrap().ends_with('Z'));
    let data = &delivered["data"];
    assert_eq!(data["email_id"], id.as_str());
    assert_eq!(data["status"], "delivered");
    assert_eq!(data["smtp"]["code"], 250);
    assert_eq!(data["attempt"], 1);
    assert_eq!(data["tags"], json!(["welcome"]));
    assert_eq!(data["metadata"], json!({"user_id": "42"}));
    assert_eq!(data["from"], "app@example.com");

    let bounced = find(&got, "email.bounced", "gone@example.com")
        .unwrap()
        .json();
    assert_eq!(bounced["data"]["status"], "bounced");
    assert_eq!(bounced["data"]["smtp"]["code"], 550);
    assert_eq!(bounced["data"]["smtp"]["enhanced"], "5.1.1");
    assert!(
        bounced["data"]["smtp"]["message"]
            .as_str()
            .unwrap()
            .contains("no such user")
    );
    let deferred = find(&got, "email.deferred", "busy@example.com")
        .unwrap()
        .json();
    assert_eq!(deferred["data"]["smtp"]["code"], 451);
    assert_eq!(deferred["data"]["attempt"], 1);
    let failed = find(&got, "email.failed", "full@example.com")
        .unwrap()
        .json();
    assert_eq!(failed["data"]["attempt"], 2);
    assert!(
        failed["data"]["detail"]
            .as_str()
            .unwrap()
            .contains("gave up")
    );
    let suppressed = find(&got, "email.suppressed", "sup@example.com")
        .unwrap()
        .json();
    assert_eq!(suppressed["data"]["metadata"], json!({"user_id": "42"}));
    let queued_later = find(&got, "email.queued", "later@example.com")
        .unwrap()
        .json();
    assert_eq!(queued_later["data"]["status"], "scheduled");
    let cancelled = find(&got, "email.cancelled", "later@example.com")
        .unwrap()
        .json();
    assert_eq!(cancelled["data"]["email_id"], scheduled.as_str());
}

#[tokio::test]
async fn an_endpoint_gets_only_the_events_it_asked_for() {
    let smtp = TestSmtpServer::start().await;
    smtp.rcpt_reply("gone@example.com", 550, "5.1.1 no such user", None);
    let receiver = WebhookReceiver::start().await;
    let app = webhook_app().relaying_to(&smtp).start().await;
    app.create_webhook(&json!({"url": receiver.url("/bounces"), "events": ["email.bounced"]}))
        .await;
    app.create_webhook(&json!({"url": receiver.url("/all"), "events": "all"}))
        .await;
    app.create_webhook(&json!({"url": receiver.url("/off"), "enabled": false}))
        .await;
    // Another project's endpoint hears nothing of this project's mail.
    let other = app.create_key("other", "webhooks", false).await;
    let (status, _) = app
        .call_as(
            &other,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": receiver.url("/other")})),
        )
        .await;
    assert_eq!(status, 201);

    let id = app
        .send_ok(&mail(json!(["ok@example.com", "gone@example.com"])))
        .await;
    app.drain().await;
    assert_eq!(app.get_email(&id).await.status, "partially_delivered");
    assert_eq!(
        receiver.received_at("/all").len(),
        4,
        "queued twice, delivered, bounced"
    );
    let bounces = receiver.received_at("/bounces");
    assert_eq!(bounces.len(), 1);
    assert_eq!(bounces[0].event_type(), "email.bounced");
    assert!(receiver.received_at("/off").is_empty());
    assert!(receiver.received_at("/other").is_empty());
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_with_the_same_id_until_it_answers() {
    let mut receiver = WebhookReceiver::start().await;
    receiver.reply_next("/hook", Reply::status(500), 2);
    let app = webhook_app().start().await;
    let (webhook, secret) = app
        .create_webhook(&json!({"url": receiver.url("/hook"), "events": ["email.delivered"]}))
        .await;
    app.send_ok(&mail(json!("a@example.com"))).await;
    // Retries come later than a drain looks: wait for them.
    let got = receiver.wait_until(WAIT, |got| got.len() == 3).await;
    let ids: HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1, "the webhook-id is stable across retries");
    for r in &got {
        r.verify(&secret).unwrap();
        assert_eq!(r.body, got[0].body, "the same body every time");
    }
    let list = wait_for_deliveries(&app, &webhook, |l| {
        l.len() == 1 && l[0].status == "succeeded"
    })
    .await;
    let d = &list[0];
    assert_eq!(d.id, got[0].header("webhook-id"));
    assert_eq!(d.attempts, 3);
    assert_eq!(d.response_status, Some(200));
    let history = &d.history;
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].response_status, Some(500));
    assert!(history[0].error.as_deref().unwrap().contains("500"));

    // Now the receiver is down altogether: connection refused, then back up.
    receiver.down().await;
    app.send_ok(&mail(json!("b@example.com"))).await;
    // Between attempts (a third may be under way at any moment: then it reads `sending`).
    let list = wait_for_deliveries(&app, &webhook, |l| {
        l.len() == 2 && l[0].attempts >= 2 && l[0].status == "pending"
    })
    .await;
    assert!(list[0].next_attempt_at.is_some());
    let error = list[0].error.as_deref().unwrap();
    assert!(error.contains("could not connect"), "{error}");
    receiver.up().await;
    let got = receiver
        .wait_until(WAIT, |got| {
            got.iter()
                .any(|r| r.json()["data"]["recipient"] == "b@example.com")
        })
        .await;
    got.last().unwrap().verify(&secret).unwrap();
    wait_for_deliveries(&app, &webhook, |l| {
        l.iter().all(|d| d.status == "succeeded")
    })
    .await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let receiver = WebhookReceiver::start().await;
    receiver.reply_next("/hook", Reply::status(503).header("retry-after", "2"), 1);
    let app = webhook_app().start().await;
    let (webhook, _) = app
        .create_webhook(&json!({"url": receiver.url("/hook")}))
        .await;
    app.send_webhook_test(&webhook).await;
    // The retry waits for the clock (Retry-After), so the test does too.
    let got = receiver.wait_until(WAIT, |got| got.len() == 2).await;
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}, before Retry-After"
    );
}

#[tokio::test]
async fn a_410_disables_the_endpoint() {
    let receiver = WebhookReceiver::start().await;
    receiver.reply_always("/hook", Reply::status(410));
    let app = webhook_app().start().await;
    let (webhook, _) = app
        .create_webhook(&json!({"url": receiver.url("/hook"), "events": ["email.delivered"]}))
        .await;
    let id = app.send_ok(&mail(json!("a@example.com"))).await;
    app.drain().await;
    let endpoint = app.get_webhook(&webhook).await;
    assert!(!endpoint.enabled, "{endpoint}");
    assert!(
        endpoint.disabled_reason.as_deref().unwrap().contains("410"),
        "{endpoint}"
    );
    assert!(endpoint.disabled_at.is_some());
    let list = app.webhook_deliveries(&webhook).await;
    assert_eq!(list[0].status, "failed");
    assert_eq!(list[0].response_status, Some(410));
    assert_eq!(app.get_email(&id).await.status, "delivered");

    // Disabled: new events are not queued for it, tests and replays are refused.
    app.send_ok(&mail(json!("b@example.com"))).await;
    let (status, problem) = app
        .call(Method::POST, &format!("/v1/webhooks/{webhook}/test"), None)
        .await;
    assert_eq!(status, 409);
    assert_eq!(problem["code"], "webhook_disabled");
    app.drain().await;
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(app.webhook_deliveries(&webhook).await.len(), 1);

    // Enabled again by its owner, it works again.
    receiver.reply_always("/hook", Reply::status(204));
    let endpoint = app.enable_webhook(&webhook).await;
    assert!(endpoint.enabled);
    assert!(endpoint.disabled_reason.is_none());
    app.send_ok(&mail(json!("c@example.com"))).await;
    app.drain().await;
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn an_endpoint_failing_too_long_is_disabled_with_the_reason() {
    let receiver = WebhookReceiver::start().await;
    receiver.reply_always("/hook", Reply::status(500));
    let app = webhook_app()
        .configure(|c| {
            c.webhooks.disable_after_secs = 1;
            c.webhooks.retry_schedule_secs = vec![0.4; 20];
        })
        .start()
        .await;
    let (webhook, _) = app
        .create_webhook(&json!({"url": receiver.url("/hook")}))
        .await;
    app.send_ok(&mail(json!("a@example.com"))).await;
    // Disabling takes failures spread over `disable_after_secs`: time, not work.
    let endpoint = wait_for_webhook(&app, &webhook, |w| !w.enabled).await;
    let reason = endpoint.disabled_reason.as_deref().unwrap();
    assert!(reason.contains("failed since"), "{reason}");
    assert!(endpoint.failing_since.is_some());
    // Nothing is left waiting for a disabled endpoint.
    let list =
        wait_for_deliveries(&app, &webhook, |l| l.iter().all(|d| d.status == "failed")).await;
    assert!(list.iter().any(|d| d.response_status == Some(500)));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let receiver = WebhookReceiver::start().await;
    receiver.reply_always(
        "/hook",
        Reply::status(302).header("location", &receiver.url("/elsewhere")),
    );
    let app = webhook_app()
        .configure(|c| c.webhooks.retry_schedule_secs = vec![])
        .start()
        .await;
    let (webhook, _) = app
        .create_webhook(&json!({"url": receiver.url("/hook")}))
        .await;
    app.send_webhook_test(&webhook).await;
    app.drain().await;
    let list = app.webhook_deliveries(&webhook).await;
    assert_eq!(list[0].status, "failed");
    let error = list[0].error.as_deref().unwrap();
    assert!(error.contains("redirects are not followed"), "{error}");
    assert!(receiver.received_at("/elsewhere").is_empty());
}

#[tokio::test]
async fn private_targets_are_refused_at_set_up_and_at_send_time() {
    let receiver = WebhookReceiver::start().await;
    let app = webhook_app()
        .configure(|c| {
            c.webhooks.allow_private_targets = false;
            // One attempt each, so that after a drain each delivery has its final word.
            c.webhooks.retry_schedule_secs = vec![];
        })
        .start()
        .await;
    let port = receiver.addr.port();
    for (url, kind) in [
        (format!("http://127.0.0.1:{port}/hook"), "loopback"),
        (format!("http://localhost:{port}/hook"), "loopback"),
        ("http://[::1]/".to_string(), "loopback"),
        ("http://[::ffff:127.0.0.1]/".to_string(), "loopback"),
        ("http://10.0.0.1/".to_string(), "private"),
        ("http://192.168.1.1/".to_string(), "private"),
        (
            "http://169.254.169.254/latest/meta-data".to_string(),
            "link-local",
        ),
        ("http://224.0.0.1/".to_string(), "multicast"),
        ("http://0.0.0.0/".to_string(), "unspecified"),
    ] {
        let (status, problem) = app
            .call(Method::POST, "/v1/webhooks", Some(json!({"url": url})))
            .await;
        assert_eq!(status, 422, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "url");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(kind), "{url}: {message}");
    }
    for url in [
        "ftp://example.com/",
        "not a url",
        "http://user:pw@example.com/",
        "",
    ] {
        let (status, problem) = app
            .call(Method::POST, "/v1/webhooks", Some(json!({"url": url})))
            .await;
        assert_eq!(status, 422, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "url");
    }

    // A target that was public when checked and is not any more (DNS changed): the send-time
    // check refuses it, for an IP literal and for a name.
    let project: uuid::Uuid = sqlx::query_scalar("SELECT id FROM projects WHERE name = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for url in [
        receiver.url("/literal"),
        format!("http://localhost:{port}/name"),
    ] {
        let id = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, project_id, url, secret) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(project)
        .bind(url)
        .bind(mailgate::webhooks::WebhookSecret::generate().expose())
        .execute(&app.pool)
        .await
        .unwrap();
        ids.push(id.to_string());
    }
    // Changing a URL to a private one is refused too.
    let (status, problem) = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{}", ids[0]),
            Some(json!({"url": "http://10.1.1.1/"})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "url");

    for id in &ids {
        app.send_webhook_test(id).await;
    }
    app.drain().await;
    for id in &ids {
        let list = app.webhook_deliveries(id).await;
        assert_eq!(list[0].status, "failed", "{:#}", list[0]);
        let error = list[0].error.as_deref().unwrap();
        assert!(
            error.contains("loopback") && error.contains("must be public"),
            "{error}"
        );
        assert!(list[0].response_status.is_none());
    }
    assert!(receiver.received().is_empty(), "nothing reached the target");
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one_for_the_overlap() {
    let receiver = WebhookReceiver::start().await;
    let app = webhook_app()
        .configure(|c| c.webhooks.rotation_overlap_secs = 2)
        .start()
        .await;
    let (webhook, old) = app
        .create_webhook(&json!({"url": receiver.url("/hook")}))
        .await;
    let test = || async {
        app.send_webhook_test(&webhook).await;
        app.drain().await;
        receiver.received()
    };
    let got = test().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event_type(), "webhook.test");
    assert_eq!(got[0].json()["data"]["webhook_id"], webhook.as_str());
    got[0].verify(&old).unwrap();
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 1);

    let rotated = app.rotate_webhook_secret(&webhook).await;
    let new = rotated.secret;
    assert!(new.starts_with("whsec_") && new != old);
    let expires_at = rotated.previous_secret_expires_at.unwrap();

    // During the overlap both secrets sign: receivers on either verify.
    let got = test().await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].header("webhook-signature").split(' ').count(), 2);
    got[1].verify(&new).unwrap();
    got[1].verify(&old).unwrap();

    // After it only the new one does. The overlap is wall-clock time: wait it out.
    let left = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(50)).await;
    let endpoint = app.get_webhook(&webhook).await;
    assert!(endpoint.previous_secret_expires_at.is_none());
    let got = test().await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].header("webhook-signature").split(' ').count(), 1);
    got[2].verify(&new).unwrap();
    assert!(got[2].verify(&old).is_err());
}

#[tokio::test]
async fn a_slow_endpoint_holds_up_neither_mail_nor_other_endpoints() {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    receiver.reply_always("/slow", Reply::status(200).after(Duration::from_secs(10)));
    let app = webhook_app()
        .relaying_to(&smtp)
        .configure(|c| {
            c.webhooks.runner.concurrency = 4;
            c.webhooks.per_endpoint_concurrency = 2;
        })
        .start()
        .await;
    for path in ["/slow", "/fast"] {
        app.create_webhook(&json!({"url": receiver.url(path), "events": ["email.delivered"]}))
            .await;
    }
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(app.send_ok(&mail(json!(format!("r{i}@example.com")))).await);
    }
    for id in &ids {
        app.wait_for_status(id, &["delivered"], Duration::from_secs(5))
            .await;
    }
    receiver
        .wait_until(Duration::from_secs(5), |got| {
            got.iter().filter(|r| r.path == "/fast").count() == 10
        })
        .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "took {took:?}");
    // The slow one never had more than its share in flight.
    assert!(receiver.received_at("/slow").len() <= 4);
}

#[tokio::test]
async fn deliveries_are_listed_and_can_be_replayed() {
    let receiver = WebhookReceiver::start().await;
    let app = webhook_app().start().await;
    let (webhook, secret) = app
        .create_webhook(&json!({"url": receiver.url("/hook")}))
        .await;
    for _ in 0..2 {
        app.send_webhook_test(&webhook).await;
    }
    app.drain().await;
    let list = app.webhook_deliveries(&webhook).await;
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|d| d.status == "succeeded"), "{list:#?}");
    let d = &list[0];
    assert_eq!(d.event_type, "webhook.test");
    assert_eq!(d.attempts, 1);
    assert_eq!(d.response_status, Some(200));
    assert!(d.latency_ms.unwrap() >= 0);
    assert!(d.next_attempt_at.is_none());
    assert_eq!(d.history.len(), 1);
    assert_eq!(d.payload["type"], "webhook.test");

    // Pages of one, newest first.
    let page = expect(
        200,
        app.get(&format!("/v1/webhooks/{webhook}/deliveries?limit=1"))
            .await,
    )
    .await;
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().unwrap();
    let second = expect(
        200,
        app.get(&format!(
            "/v1/webhooks/{webhook}/deliveries?limit=1&cursor={cursor}"
        ))
        .await,
    )
    .await;
    assert_eq!(second["has_more"], false);
    assert_eq!(second["data"][0]["id"], list[1].id);
    for bad in ["limit=0", "status=lost", "cursor=zzz"] {
        let (status, problem) = app
            .call(
                Method::GET,
                &format!("/v1/webhooks/{webhook}/deliveries?{bad}"),
                None,
            )
            .await;
        assert_eq!(status, 422, "{bad}: {problem}");
    }

    // A replay sends the same event again, same id and body, signed afresh.
    let delivery = d.id.as_str();
    let replayed = app.replay_webhook_delivery(&webhook, delivery).await;
    assert_eq!(replayed.status, "pending");
    app.drain().await;
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].header("webhook-id"), delivery);
    let first = got
        .iter()
        .find(|r| r.header("webhook-id") == delivery)
        .unwrap();
    assert_eq!(got[2].body, first.body);
    got[2].verify(&secret).unwrap();
    let list = app.webhook_deliveries(&webhook).await;
    assert!(
        list.iter()
            .any(|d| d.id == delivery && d.attempts == 2 && d.status == "succeeded"),
        "{list:#?}"
    );
    let (status, _) = app
        .call(
            Method::POST,
            &format!(
                "/v1/webhooks/{webhook}/deliveries/{}/retry",
                uuid::Uuid::new_v4()
            ),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn endpoints_are_managed_per_project_and_the_secret_is_shown_once() {
    let receiver = WebhookReceiver::start().await;
    let app = webhook_app().start().await;
    let created = expect(
        201,
        app.post_json(
            "/v1/webhooks",
            &json!({"url": receiver.url("/hook"), "events": ["email.bounced", "email.failed"],
                    "description": "ops"}),
        )
        .await,
    )
    .await;
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["events"], json!(["email.bounced", "email.failed"]));
    assert_eq!(created["enabled"], true);
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/webhooks/{id}");

    // As the API sends them, not as `Webhook` reads them: no `secret` field at all.
    let shown = expect(200, app.get(&path).await).await;
    assert!(shown.get("secret").is_none(), "the secret is shown once");
    let list = expect(200, app.get("/v1/webhooks").await).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(list["data"][0].get("secret").is_none());
    assert_eq!(app.list_webhooks().await[0].id, id);

    let patched = app
        .update_webhook(id, &json!({"events": "all", "description": null}))
        .await;
    assert_eq!(patched.events, "all");
    assert!(patched.description.is_none());
    assert_eq!(patched.url, receiver.url("/hook"));

    // Bad input names the field.
    for (body, field) in [
        (
            json!({"url": receiver.url("/x"), "events": ["email.sent"]}),
            "events[0]",
        ),
        (json!({"url": receiver.url("/x"), "events": []}), "events"),
        (json!({"url": receiver.url("/x"), "nope": 1}), "nope"),
        (json!({"events": "all"}), "body"),
        (
            json!({"url": receiver.url("/x"), "description": "a\u{7}b"}),
            "description",
        ),
    ] {
        let (status, problem) = app
            .call(Method::POST, "/v1/webhooks", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }

    // Another project's key sees nothing; a key without the scope is refused.
    let other = app.create_key("other", "webhooks", false).await;
    for (method, p) in [
        (Method::GET, path.clone()),
        (Method::PATCH, path.clone()),
        (Method::DELETE, path.clone()),
        (Method::POST, format!("{path}/test")),
        (Method::POST, format!("{path}/rotate-secret")),
        (Method::GET, format!("{path}/deliveries")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"enabled": false}));
        let (status, _) = app.call_as(&other, method.clone(), &p, body).await;
        assert_eq!(status, 404, "{method} {p}");
    }
    let (_, theirs) = app.call_as(&other, Method::GET, "/v1/webhooks", None).await;
    assert!(theirs["data"].as_array().unwrap().is_empty());
    let sender = app.create_key("acme", "send", false).await;
    let (status, problem) = app
        .call_as(&sender, Method::GET, "/v1/webhooks", None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(problem["code"], "forbidden_scope");
    let (status, _) = app.call(Method::GET, "/v1/webhooks/not-a-uuid", None).await;
    assert_eq!(status, 404);

    app.delete_webhook(id).await;
    let (status, _) = app.call(Method::GET, &path, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_delivery_left_by_a_dead_worker_is_sent_again() {
    let receiver = WebhookReceiver::start().await;
    let app = webhook_app().start().await;
    let (webhook, secret) = app
        .create_webhook(&json!({"url": receiver.url("/hook")}))
        .await;
    // A worker claimed this delivery, then died: its lease ran out.
    let delivery: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (endpoint_id, event_type, payload, status, attempts, lease_owner,
                                         lease_until)
         VALUES ($1, 'webhook.test', '{\"type\": \"webhook.test\"}', 'sending', 1, gen_random_uuid(),
                 now() - interval '1 second')
         RETURNING id",
    )
    .bind(uuid::Uuid::parse_str(&webhook).unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    // Until the app's reclaim pass puts it back (a time-based sweep), nothing is due.
    let got = receiver.wait_until(WAIT, |got| got.len() == 1).await;
    assert_eq!(got[0].header("webhook-id"), delivery.to_string());
    got[0].verify(&secret).unwrap();
    wait_for_deliveries(&app, &webhook, |l| {
        l[0].status == "succeeded" && l[0].attempts == 2
    })
    .await;
}

#[tokio::test]
async fn instances_share_the_delivery_queue_without_duplicates() {
    let receiver = WebhookReceiver::start().await;
    let app = webhook_app().start().await;
    let config = webhook_app()
        .on_database(&app.database_url)
        .build_config()
        .await;
    let other = app.another_instance(config).await;
    let (_, secret) = app
        .create_webhook(&json!({"url": receiver.url("/hook"), "events": ["email.delivered"]}))
        .await;
    for i in 0..20 {
        let target = if i % 2 == 0 { &app } else { &other };
        target
            .send_ok(&mail(json!(format!("r{i}@example.com"))))
            .await;
    }
    receiver.wait_until(WAIT, |got| got.len() >= 20).await;
    // Nothing left in flight on either instance that could still send a duplicate.
    app.drain().await;
    let got = receiver.received();
    assert_eq!(got.len(), 20, "each event once");
    let ids: HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 20);
    for r in &got {
        r.verify(&secret).unwrap();
    }
}

#[tokio::test]
async fn retention_deletes_old_finished_deliveries() {
    let app = webhook_app()
        .configure(|c| c.webhooks.workers_enabled = false)
        .start()
        .await;
    let (webhook, _) = app
        .create_webhook(&json!({"url": "http://127.0.0.1:9/"}))
        .await;
    let endpoint = uuid::Uuid::parse_str(&webhook).unwrap();
    for (status, age_days) in [
        ("succeeded", 40),
        ("failed", 40),
        ("pending", 40),
        ("succeeded", 1),
    ] {
        sqlx::query(
            "INSERT INTO webhook_deliveries (endpoint_id, event_type, payload, status, created_at)
             VALUES ($1, 'webhook.test', '{}', $2, now() - make_interval(days => $3))",
        )
        .bind(endpoint)
        .bind(status)
        .bind(age_days)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    // The app's own retention pass may be deleting the same rows right now (SKIP LOCKED lets
    // each pass skip the other's), so look until both have committed.
    // Only what is still to be sent, or recent, is kept.
    let left = eventually(
        "the old deliveries purged",
        Duration::from_secs(10),
        async || {
            mailgate::retention::purge_once(
                &app.pool,
                &mailgate::config::RetentionConfig::default(),
            )
            .await
            .unwrap();
            let left: Vec<String> =
                sqlx::query_scalar("SELECT status FROM webhook_deliveries ORDER BY created_at")
                    .fetch_all(&app.pool)
                    .await
                    .unwrap();
            if left.len() <= 2 {
                Ok(left)
            } else {
                Err(format!("{left:?}"))
            }
        },
    )
    .await;
    assert_eq!(left, ["pending", "succeeded"]);
}
