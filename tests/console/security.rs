//! What the console must never do: show one project's mail to another project's key, run
//! script that came in a message, or change anything for a form without its CSRF token.

use serde_json::json;

use crate::{
    forms::Visitor,
    support::{app::spawn_app, browser::Browser},
};

#[tokio::test]
async fn a_key_of_another_project_never_sees_the_message_not_even_by_its_url() {
    let app = spawn_app().await;
    let id = app
        .send_ok(&json!({"from": "a@example.com", "to": "b@example.com",
                         "subject": "Project A's secret", "html": "<p>for A only</p>"}))
        .await;
    app.drain().await;
    let other = app.create_key("beta", "send,messages", false).await;
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &other).await;
    assert!(browser.text(".who").await.contains("Project beta"));
    browser.goto(&app.url("/console/messages")).await;
    let list = browser.text("table.messages").await;
    assert!(
        list.contains("No messages yet") && !list.contains("secret"),
        "{list}"
    );
    for path in [
        format!("/console/messages/{id}"),
        format!("/console/messages/{id}/html"),
    ] {
        browser.goto(&app.url(&path)).await;
        let body = browser.text("body").await;
        assert!(
            body.contains("404") && !body.contains("secret") && !body.contains("for A only"),
            "{path}: {body}"
        );
    }
    // Same answer over HTTP, with the status a client sees.
    let mut visitor = Visitor::new(&app);
    visitor.sign_in(&other).await;
    for path in [
        format!("/console/messages/{id}"),
        format!("/console/messages/{id}/html"),
    ] {
        assert_eq!(visitor.get(&path).await.status(), 404, "{path}");
    }
    let csrf = visitor.csrf().await;
    let cancel = visitor
        .post(
            &format!("/console/messages/{id}/cancel"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(cancel.status(), 404);
}

#[tokio::test]
async fn script_in_a_subject_or_html_renders_as_text_and_never_runs() {
    let app = spawn_app().await;
    let subject = r#"<script>alert("subject")</script><img src=x onerror=alert("subject-img")>"#;
    let id = app
        .send_ok(&json!({
            "from": "Mallory <mallory@example.com>",
            "to": "victim@example.com",
            "subject": subject,
            "html": r#"<p>hello</p><script>alert("html")</script><img src=x onerror="alert('html-img')">"#,
            "text": "<script>alert(\"text\")</script>",
            "metadata": {"note": "<b onmouseover=alert(1)>bold</b>"},
        }))
        .await;
    app.drain().await;
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &app.key).await;
    browser.goto(&app.url("/console/messages")).await;
    // The payload is shown as the text it is.
    let link = browser.find("table.messages td.subject a").await;
    assert_eq!(browser.text_of(&link).await, subject);
    assert_eq!(browser.dialog().await, None, "a script ran on the list");
    browser
        .goto(&app.url(&format!("/console/messages/{id}")))
        .await;
    assert_eq!(browser.text("h1").await, subject);
    assert!(
        browser
            .text(".text-part")
            .await
            .contains("<script>alert(\"text\")</script>")
    );
    browser
        .click("section[aria-labelledby=summary-h] details summary")
        .await;
    assert!(
        browser
            .text("section[aria-labelledby=summary-h] details pre")
            .await
            .contains("<b onmouseover=alert(1)>bold</b>")
    );
    let frame = browser.find("iframe.preview").await;
    assert_eq!(
        browser.attribute(&frame, "sandbox").await.as_deref(),
        Some("")
    );
    // Load the preview frame once more, watching for its `load` event: by then the HTML part
    // is parsed and its scripts had the chance they must not get.
    browser
        .execute(
            "const f = document.querySelector('iframe.preview'); window.previewLoaded = false; \
             f.addEventListener('load', () => { window.previewLoaded = true; }, {once: true}); \
             f.src = f.src;",
            json!([]),
        )
        .await;
    browser
        .wait_until(
            "the preview frame loaded",
            "return window.previewLoaded === true;",
        )
        .await;
    assert_eq!(
        browser.dialog().await,
        None,
        "a script ran on the message page"
    );
    // The injected elements are not in the page as elements.
    let injected = browser
        .execute("return document.querySelectorAll('main script, main img[onerror], main b[onmouseover]').length;", json!([]))
        .await;
    assert_eq!(injected, 0);
    browser.screenshot("message-hostile", 1280).await;

    // The frame's own answer: no script at all, a sandbox, only this origin may frame it.
    let mut visitor = Visitor::new(&app);
    visitor.sign_in(&app.key).await;
    let html = visitor.get(&format!("/console/messages/{id}/html")).await;
    assert_eq!(html.status(), 200);
    let csp = html.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("sandbox")
            && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(html.headers()["x-frame-options"], "SAMEORIGIN");
}

#[tokio::test]
async fn a_form_posted_without_its_csrf_token_changes_nothing() {
    let app = spawn_app().await;
    // Scheduled, so it can still be cancelled.
    let send_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let id = app
        .send_ok(&json!({"from": "a@example.com", "to": "b@example.com",
                         "subject": "Later", "text": "x", "send_at": send_at}))
        .await;
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &app.key).await;
    browser
        .goto(&app.url(&format!("/console/messages/{id}")))
        .await;
    assert_eq!(browser.text("#message-status").await, "scheduled");
    // The page's own form, with its token taken out (as a forged form would lack it).
    browser
        .execute(
            "const form = document.querySelector(\"form[action$='/cancel']\");
             form.querySelector('input[name=csrf]').remove();
             form.submit();",
            json!([]),
        )
        .await;
    browser.wait_for_text("h1", |t| t.starts_with("403")).await;
    assert!(browser.text("body").await.contains("security token"));
    assert_eq!(app.get_email(&id).await.status, "scheduled");
    // A wrong token is no better.
    let mut visitor = Visitor::new(&app);
    visitor.sign_in(&app.key).await;
    let forged = visitor
        .post(
            &format!("/console/messages/{id}/cancel"),
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(visitor.post("/console/sign-out", &[]).await.status(), 403);
    assert_eq!(app.get_email(&id).await.status, "scheduled");

    // With the token, the same form cancels (after its confirmation).
    browser
        .goto(&app.url(&format!("/console/messages/{id}")))
        .await;
    browser.click("form[action$='/cancel'] button").await;
    assert!(
        browser
            .dialog()
            .await
            .unwrap()
            .contains("Cancel every recipient")
    );
    browser.accept_dialog().await;
    browser
        .wait_for_text("#message-status", |t| t == "cancelled")
        .await;
    assert_eq!(app.get_email(&id).await.status, "cancelled");
}
