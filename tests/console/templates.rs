//! The template editor: the live preview follows what is typed, parse errors show their
//! line, and saving stores the new version for the API.

use serde_json::json;

use crate::support::{app::spawn_app, browser::Browser};

#[tokio::test]
async fn an_edited_template_previews_the_new_text_and_a_syntax_error_shows_its_line() {
    let app = spawn_app().await;
    app.create_template(&json!({
        "name": "welcome",
        "subject": "Welcome, {{ name }}",
        "html": "<p>Hello {{ name }}</p>",
        "text": "Hello {{ name }}",
    }))
    .await;
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &app.key).await;
    browser.click("nav a[href='/console/templates']").await;
    browser
        .wait_for_path("the list", |p| p == "/console/templates")
        .await;
    assert!(browser.text("table.templates").await.contains("welcome"));
    browser.screenshot("templates", 1280).await;
    browser.screenshot("templates", 390).await;
    browser.click("a[href='/console/templates/welcome']").await;
    browser
        .wait_for_path("the editor", |p| p == "/console/templates/welcome")
        .await;
    // The first preview renders the stored template with the example variables.
    browser.fill("#t-variables", r#"{"name": "Ada"}"#).await;
    browser
        .wait_for_text("#preview-subject", |t| t == "Welcome, Ada")
        .await;

    browser
        .fill("#t-text", "Hi {{ name }}, your order shipped.")
        .await;
    browser
        .wait_for_text("#preview-text", |t| t == "Hi Ada, your order shipped.")
        .await;
    browser.screenshot("template", 1280).await;
    browser.screenshot("template", 390).await;

    browser
        .fill("#t-html", "<p>Hello</p>\n<p>{{ name </p>")
        .await;
    let errors = browser
        .wait_for_text("#preview-errors", |t| !t.is_empty())
        .await;
    assert!(
        errors.contains("html") && errors.contains("line 2"),
        "{errors}"
    );
    // Saving it is refused with the same error; the stored version is unchanged.
    browser.click("#template-form button[type=submit]").await;
    browser
        .wait_for_text("#save-errors", |t| t.contains("line 2"))
        .await;
    assert_eq!(app.get_template("welcome").await["version"], 1);

    browser.fill("#t-html", "<p>Hi {{ name }}</p>").await;
    browser.click("#template-form button[type=submit]").await;
    browser
        .wait_for_path("the saved template", |p| p.contains("saved=1"))
        .await;
    let stored = app.get_template("welcome").await;
    assert_eq!(stored["text"], "Hi {{ name }}, your order shipped.");
    assert_eq!(stored["html"], "<p>Hi {{ name }}</p>");
    assert_eq!(stored["version"], 2);

    browser.click("#delete-template button").await;
    browser.accept_dialog().await;
    browser
        .wait_for_path("the list", |p| p == "/console/templates?done=deleted")
        .await;
    assert!(
        browser
            .text("table.templates")
            .await
            .contains("No templates yet")
    );
    let (status, _) = app
        .call(reqwest::Method::GET, "/v1/templates/welcome", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_new_template_is_created_from_the_page() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &app.key).await;
    browser.goto(&app.url("/console/templates/new")).await;
    browser.fill("#t-name", "receipt").await;
    browser.fill("#t-subject", "Receipt {{ id }}").await;
    browser.fill("#t-text", "Paid: {{ id }}").await;
    browser.fill("#t-variables", r#"{"id": 7}"#).await;
    browser
        .wait_for_text("#preview-text", |t| t == "Paid: 7")
        .await;
    browser.click("#template-form button[type=submit]").await;
    browser
        .wait_for_path("the new template", |p| {
            p == "/console/templates/receipt?saved=1"
        })
        .await;
    assert_eq!(
        app.get_template("receipt").await["subject"],
        "Receipt {{ id }}"
    );
    // A second one by the same name is refused, not overwritten.
    browser.goto(&app.url("/console/templates/new")).await;
    browser.fill("#t-name", "receipt").await;
    browser.fill("#t-text", "other").await;
    browser.click("#template-form button[type=submit]").await;
    browser
        .wait_for_text("#save-errors", |t| t.contains("already exists"))
        .await;
    assert_eq!(app.get_template("receipt").await["text"], "Paid: {{ id }}");
}
