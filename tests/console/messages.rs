//! The overview, the message list and a message's page, as a person signed in with a key
//! sees them after sending over the API.

use serde_json::json;

use crate::support::{app::spawn_app, browser::Browser};

#[tokio::test]
async fn a_message_sent_over_the_api_is_listed_and_its_timeline_shows_delivered() {
    let app = spawn_app().await;
    let id = app
        .send_ok(&json!({
            "from": "Billing <billing@example.com>",
            "to": ["ada@example.com", "bob@example.com"],
            "subject": "Your receipt #1042",
            "html": "<h1>Thanks, Ada</h1><p>Order <b>#1042</b> is paid.</p>",
            "text": "Thanks, Ada. Order #1042 is paid.",
            "tags": ["receipts"],
            "attachments": [{"filename": "receipt.pdf", "content": "JVBERi0xLjQK",
                             "content_type": "application/pdf"}],
        }))
        .await;
    app.send_ok(&json!({"from": "news@example.com", "to": "cy@example.com",
                        "subject": "Weekly news", "text": "Hello", "tags": ["news"]}))
        .await;
    app.drain().await;

    let browser = Browser::start().await;
    assert_eq!(
        browser.sign_in(&app.base, &app.key).await,
        "/console/overview"
    );
    // The overview counts both messages and their three delivered recipients.
    let day = browser.text("section[aria-labelledby=day-h]").await;
    assert!(
        day.contains("Sent\n2") && day.contains("Delivered\n3"),
        "{day}"
    );
    assert!(browser.find_all("svg.chart rect.bar.delivered").await.len() == 7);
    browser.screenshot("overview", 1280).await;
    browser.screenshot("overview", 390).await;

    browser.click("nav a[href='/console/messages']").await;
    browser
        .wait_for_path("the list", |p| p == "/console/messages")
        .await;
    let list = browser.text("table.messages").await;
    assert!(
        list.contains("Your receipt #1042") && list.contains("Weekly news"),
        "{list}"
    );
    browser.screenshot("messages", 1280).await;
    browser.screenshot("messages", 390).await;

    // The API's filters, through the form.
    browser.fill("#f-tag", "news").await;
    browser.click("form.filters button").await;
    browser
        .wait_for_path("the filtered list", |p| p.contains("tag=news"))
        .await;
    let filtered = browser.text("table.messages").await;
    assert!(
        filtered.contains("Weekly news") && !filtered.contains("Your receipt"),
        "{filtered}"
    );
    browser
        .goto(&app.url("/console/messages?tag=none-such"))
        .await;
    assert!(
        browser
            .text("table.messages")
            .await
            .contains("No messages match")
    );

    // One message: recipients, timeline, parts.
    browser.goto(&app.url("/console/messages")).await;
    browser
        .click(&format!("a[href='/console/messages/{id}']"))
        .await;
    browser
        .wait_for_path("the message", |p| p == format!("/console/messages/{id}"))
        .await;
    assert_eq!(browser.text("#message-status").await, "delivered");
    let timeline = browser.text("#timeline").await;
    assert!(
        timeline.contains("queued")
            && timeline.contains("delivered")
            && timeline.contains("ada@example.com"),
        "{timeline}"
    );
    let recipients = browser.text("section[aria-labelledby=rcpt-h]").await;
    assert!(recipients.contains("bob@example.com"), "{recipients}");
    assert!(
        browser
            .text(".text-part")
            .await
            .contains("Order #1042 is paid.")
    );
    let attachments = browser.text("section[aria-labelledby=content-h]").await;
    assert!(
        attachments.contains("receipt.pdf") && attachments.contains("application/pdf"),
        "{attachments}"
    );
    let frame = browser.find("iframe.preview").await;
    assert_eq!(
        browser.attribute(&frame, "sandbox").await.as_deref(),
        Some("")
    );
    browser
        .wait_until(
            "the preview frame loading",
            "return performance.getEntriesByType('resource').some(e => e.initiatorType === 'iframe' && e.responseEnd > 0);",
        )
        .await;
    browser.screenshot("message", 1280).await;
    browser.screenshot("message", 390).await;
    // The MIME source is the stored message, byte for byte (shown as text).
    browser
        .click("section[aria-labelledby=content-h] details summary")
        .await;
    let source = browser.text("pre.source").await;
    assert!(source.contains("Subject: Your receipt #1042"), "{source}");
}

#[tokio::test]
async fn the_list_pages_with_the_api_cursor_and_keeps_its_filters() {
    let app = spawn_app().await;
    let batch: Vec<_> = (0..5)
        .map(|i| {
            json!({"from": "a@example.com", "to": "b@example.com",
                        "subject": format!("Message {i}"), "text": "x", "tags": ["paged"]})
        })
        .collect();
    let response = app.post_batch_raw(&app.key, &json!(batch)).await;
    assert_eq!(response.status(), 200);
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &app.key).await;
    browser
        .goto(&app.url("/console/messages?tag=paged&limit=2"))
        .await;
    let mut seen = Vec::new();
    loop {
        for link in browser.find_all("table.messages td.subject a").await {
            seen.push(browser.text_of(&link).await);
        }
        let next = browser.find_all("a[rel=next]").await;
        let Some(next) = next.first() else { break };
        let href = browser.attribute(next, "href").await.unwrap();
        assert!(
            href.contains("tag=paged") && href.contains("cursor="),
            "{href}"
        );
        browser.click_on(next).await;
        browser
            .wait_for_path("the next page", |p| p.contains("cursor="))
            .await;
    }
    assert_eq!(
        seen,
        [
            "Message 4",
            "Message 3",
            "Message 2",
            "Message 1",
            "Message 0"
        ]
    );
    // A bad filter is named, as the API names it.
    browser
        .goto(&app.url("/console/messages?status=sent"))
        .await;
    assert!(browser.text("[role=alert]").await.contains("status"));
}

/// Mail the content policy held (here: the scanner cannot be reached and `on_error` holds)
/// is released or discarded from its page.
#[tokio::test]
async fn held_mail_is_released_or_discarded_from_its_page() {
    use crate::support::app::{TestApp, create_database, test_config};
    let mut config = test_config(&create_database().await);
    // Nothing listens on port 9 of loopback: every scan fails, and the policy holds.
    config.scan.rspamd_url = Some("http://127.0.0.1:9".into());
    config.scan.on_error = mailgate::config::OnScanError::Hold;
    let app = TestApp::builder().config(config).start().await;
    let keep = app
        .send_ok(&json!({"from": "a@example.com", "to": "b@example.com",
                         "subject": "Keep me", "text": "x"}))
        .await;
    let drop = app
        .send_ok(&json!({"from": "a@example.com", "to": "b@example.com",
                         "subject": "Drop me", "text": "x"}))
        .await;
    assert_eq!(app.get_email(&keep).await.status, "held");
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &app.key).await;

    browser
        .goto(&app.url(&format!("/console/messages/{keep}")))
        .await;
    assert_eq!(browser.text("#message-status").await, "held");
    browser.click("#release-message button").await;
    browser
        .wait_for_text("#message-status", |t| t != "held")
        .await;
    app.drain().await;
    assert_eq!(app.get_email(&keep).await.status, "delivered");

    browser
        .goto(&app.url(&format!("/console/messages/{drop}")))
        .await;
    browser.fill("#discard-reason", "looks like spam").await;
    browser.click("#discard-message button").await;
    browser
        .wait_for_text("#message-status", |t| t == "cancelled")
        .await;
    assert!(browser.text("#timeline").await.contains("looks like spam"));
    assert!(browser.find_all("#release-message").await.is_empty());

    // The API settles through the same code: a released message comes back with its detail.
    let third = app
        .send_ok(&json!({"from": "a@example.com", "to": "b@example.com",
                         "subject": "Over the API", "text": "x"}))
        .await;
    let (status, released) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/emails/{third}/release"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{released}");
    assert_ne!(released["status"], "held");
    let (status, again) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/emails/{third}/discard"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["code"], "not_held");
}
