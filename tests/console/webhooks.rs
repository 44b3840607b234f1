//! An endpoint's page: its deliveries with the body sent and each answer, replay, a test
//! event, enable/disable, and a new secret shown once.

use serde_json::json;

use crate::support::{app::TestApp, browser::Browser, webhook_receiver::WebhookReceiver};

#[tokio::test]
async fn a_delivery_is_replayed_from_the_log() {
    let app = TestApp::builder().webhooks_to_loopback().start().await;
    let receiver = WebhookReceiver::start().await;
    let (webhook, secret) = app
        .create_webhook(&json!({"url": receiver.url("/hook"), "events": ["email.delivered"]}))
        .await;
    app.send_ok(&json!({"from": "a@example.com", "to": "b@example.com",
                        "subject": "Hi", "text": "x"}))
        .await;
    app.drain().await;
    let first = receiver.received_at("/hook");
    assert_eq!(first.len(), 1);
    first[0].verify(&secret).unwrap();

    let browser = Browser::start().await;
    browser.sign_in(&app.base, &app.key).await;
    browser.click("nav a[href='/console/webhooks']").await;
    browser
        .wait_for_path("the endpoints", |p| p == "/console/webhooks")
        .await;
    browser.screenshot("webhooks", 1280).await;
    browser.screenshot("webhooks", 390).await;
    browser
        .click(&format!("a[href='/console/webhooks/{webhook}']"))
        .await;
    browser
        .wait_for_path("the endpoint", |p| {
            p == format!("/console/webhooks/{webhook}")
        })
        .await;
    let log = browser.text("ol.deliveries").await;
    assert!(
        log.contains("email.delivered") && log.contains("succeeded") && log.contains("200"),
        "{log}"
    );
    browser.click("ol.deliveries details summary").await;
    assert!(
        browser
            .text("ol.deliveries details pre")
            .await
            .contains("\"email.delivered\"")
    );
    browser.screenshot("webhook", 1280).await;
    browser.screenshot("webhook", 390).await;

    browser.click("ol.deliveries button.replay").await;
    browser
        .wait_for_path("the replay queued", |p| p.contains("done=replayed"))
        .await;
    app.drain().await;
    let received = receiver.received_at("/hook");
    assert_eq!(received.len(), 2, "the replay reached the receiver");
    assert_eq!(
        received[1].header("webhook-id"),
        received[0].header("webhook-id"),
        "a replay is the same delivery"
    );

    // A test event, then disabling: test events are refused while disabled.
    browser.click("#send-test").await;
    browser
        .wait_for_path("the test queued", |p| p.contains("done=test"))
        .await;
    app.drain().await;
    assert!(
        receiver
            .received_at("/hook")
            .iter()
            .any(|r| r.event_type() == "webhook.test")
    );
    browser.click("#toggle-endpoint").await;
    browser
        .wait_for_path("disabled", |p| p.contains("done=disabled"))
        .await;
    assert!(
        browser
            .text("#endpoint-state")
            .await
            .starts_with("disabled")
    );
    assert!(!app.get_webhook(&webhook).await.enabled);
    browser.click("#toggle-endpoint").await;
    browser
        .wait_for_path("enabled", |p| p.contains("done=enabled"))
        .await;

    // A new secret, shown once: it signs from now on, and reloading does not show it again.
    browser.click("#rotate-secret").await;
    browser.accept_dialog().await;
    let new_secret = browser
        .wait_for_text("#new-secret", |t| t.starts_with("whsec_"))
        .await;
    assert_ne!(new_secret, secret);
    browser
        .goto(&app.url(&format!("/console/webhooks/{webhook}")))
        .await;
    assert!(browser.find_all("#new-secret").await.is_empty());
    browser.click("#send-test").await;
    browser
        .wait_for_path("the test queued", |p| p.contains("done=test"))
        .await;
    app.drain().await;
    let last = receiver.received_at("/hook").pop().unwrap();
    last.verify(&new_secret).unwrap();
}

#[tokio::test]
async fn an_endpoint_added_in_the_page_receives_signed_events() {
    let app = TestApp::builder().webhooks_to_loopback().start().await;
    let receiver = WebhookReceiver::start().await;
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &app.key).await;
    browser.goto(&app.url("/console/webhooks")).await;
    assert!(
        browser
            .text("table.webhooks")
            .await
            .contains("No endpoints yet")
    );
    browser.fill("#w-url", &receiver.url("/from-console")).await;
    browser.fill("#w-description", "billing app").await;
    browser.click("[id='event-email.delivered']").await;
    browser.click("#create-webhook button[type=submit]").await;
    let secret = browser
        .wait_for_text("#new-secret", |t| t.starts_with("whsec_"))
        .await;
    let endpoints = app.list_webhooks().await;
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].events, json!(["email.delivered"]));
    assert_eq!(endpoints[0].description.as_deref(), Some("billing app"));

    app.send_ok(&json!({"from": "a@example.com", "to": "b@example.com",
                        "subject": "Hi", "text": "x"}))
        .await;
    app.drain().await;
    let received = receiver.received_at("/from-console");
    assert_eq!(received.len(), 1, "only email.delivered, as ticked");
    assert_eq!(received[0].event_type(), "email.delivered");
    received[0].verify(&secret).unwrap();

    // A private address is refused when the operator has not allowed it, named as the API names it.
    let strict = TestApp::builder().start().await;
    browser.sign_in(&strict.base, &strict.key).await;
    browser.goto(&strict.url("/console/webhooks")).await;
    browser.fill("#w-url", "http://127.0.0.1:9/hook").await;
    browser.click("#create-webhook button[type=submit]").await;
    browser.wait_for_text("h1", |t| t.starts_with("422")).await;
    assert!(browser.text("body").await.contains("url"));
    assert!(strict.list_webhooks().await.is_empty());
}
