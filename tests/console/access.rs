//! Every page can be used without a mouse and read by a screen reader: each form control has
//! a label, and signing in and moving around work from the keyboard alone.

use serde_json::json;

use crate::support::{app::spawn_app, browser::Browser};

/// Visible form controls without a label (by `<label for>`, wrapping label or aria-label).
const UNLABELLED: &str = "return [...document.querySelectorAll('input, select, textarea, button')]
    .filter(el => el.type !== 'hidden')
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                  && !(el.tagName === 'BUTTON' && el.textContent.trim()))
    .map(el => el.outerHTML);";

#[tokio::test]
async fn every_control_is_labelled_and_the_keyboard_reaches_everything() {
    let app = spawn_app().await;
    let id = app
        .send_ok(&json!({"from": "a@example.com", "to": "b@example.com",
                         "subject": "Hello", "html": "<p>Hi</p>"}))
        .await;
    app.create_template(&json!({"name": "welcome", "text": "Hi {{ name }}"}))
        .await;
    app.drain().await;
    let browser = Browser::start().await;

    // Signing in by keyboard: the key field has focus; Enter submits.
    browser.goto(&app.url("/console/sign-in")).await;
    let focused = browser
        .execute("return document.activeElement.id;", json!([]))
        .await;
    assert_eq!(focused, "token");
    let field = browser.find("#token").await;
    browser
        .type_into(&field, &format!("{}\u{E007}", app.key))
        .await;
    browser
        .wait_for_path("the overview", |p| p == "/console/overview")
        .await;

    let pages = [
        "/console/overview".to_string(),
        "/console/messages".to_string(),
        format!("/console/messages/{id}"),
        "/console/templates".to_string(),
        "/console/templates/welcome".to_string(),
        "/console/webhooks".to_string(),
        "/console/suppressions".to_string(),
        "/console/keys".to_string(),
        "/console/domains".to_string(),
    ];
    for page in &pages {
        browser.goto(&app.url(page)).await;
        let unlabelled = browser.execute(UNLABELLED, json!([])).await;
        assert_eq!(unlabelled, json!([]), "{page} has controls without a label");
        // The first Tab reaches the skip link, and following it moves focus to the content.
        browser
            .execute(
                "document.activeElement && document.activeElement.blur();",
                json!([]),
            )
            .await;
        let body = browser.find("body").await;
        browser.type_into(&body, "\u{E004}").await;
        let first = browser
            .execute(
                "return document.activeElement.textContent.trim();",
                json!([]),
            )
            .await;
        assert_eq!(first, "Skip to content", "{page}");
    }
    // From the skip link, the keyboard goes on into the navigation and opens a page.
    browser.goto(&app.url("/console/overview")).await;
    let body = browser.find("body").await;
    // Tab: skip link, brand, Overview, Messages; Enter opens Messages.
    browser
        .type_into(&body, "\u{E004}\u{E004}\u{E004}\u{E004}\u{E007}")
        .await;
    browser
        .wait_for_path("the messages by keyboard", |p| p == "/console/messages")
        .await;
}
