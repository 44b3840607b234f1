//! The operator's console: every project, one chosen at a time; the queue with the relays'
//! health, and "retry deferred now".

use serde_json::json;

use crate::support::{
    app::{JWT_SECRET, TestApp, create_database, relay_to, test_config},
    browser::Browser,
    smtp_server::TestSmtpServer,
};

#[tokio::test]
async fn the_operator_picks_a_project_and_retries_deferred_mail_now() {
    let smtp = TestSmtpServer::start().await;
    smtp.rcpt_reply("busy@example.com", 451, "4.3.0 try again later", Some(1));
    let mut config = test_config(&create_database().await);
    relay_to(&mut config, &smtp);
    // Deferred mail waits an hour: only the button brings it back sooner.
    config.delivery.retry_base_secs = 3600.0;
    config.delivery.retry_max_secs = 3600.0;
    let app = TestApp::builder().config(config).start().await;
    let id = app
        .send_ok(&json!({"from": "a@example.com", "to": "busy@example.com",
                         "subject": "Try me", "text": "x"}))
        .await;
    app.drain().await;
    assert_eq!(app.get_email(&id).await.status, "deferred");
    app.create_key("beta", "send", false).await;

    let token = mailgate::service::gate::mint_operator_token(
        &JWT_SECRET.to_string().into(),
        std::time::Duration::from_secs(600),
    )
    .unwrap();
    let browser = Browser::start().await;
    // No project chosen yet: the operator starts on the projects page.
    browser.sign_in(&app.base, &token).await;
    browser
        .wait_for_path("the projects", |p| p == "/console/projects")
        .await;
    let projects = browser.text("table").await;
    assert!(
        projects.contains("acme") && projects.contains("beta"),
        "{projects}"
    );
    browser.screenshot("projects", 1280).await;
    browser.screenshot("projects", 390).await;
    browser
        .click("button[aria-label='Show project acme']")
        .await;
    browser
        .wait_for_path("the overview", |p| p == "/console/overview")
        .await;
    assert!(browser.text(".who").await.contains("Project acme"));
    assert!(
        browser
            .text("section[aria-labelledby=queue-h]")
            .await
            .contains("deferred")
    );
    browser
        .goto(&app.url(&format!("/console/messages/{id}")))
        .await;
    let timeline = browser.text("#timeline").await;
    assert!(
        timeline.contains("deferred")
            && timeline.contains("451")
            && timeline.contains("try again later"),
        "{timeline}"
    );

    browser.click("nav a[href='/console/queue']").await;
    browser
        .wait_for_path("the queue", |p| p == "/console/queue")
        .await;
    let relays = browser.text("section[aria-labelledby=r-h]").await;
    assert!(
        relays.contains("default") && relays.contains("127.0.0.1"),
        "{relays}"
    );
    browser.screenshot("queue", 1280).await;
    browser.screenshot("queue", 390).await;
    browser
        .click("form[action='/console/queue/retry'] button")
        .await;
    browser.accept_dialog().await;
    browser
        .wait_for_text("[role=status]", |t| t.starts_with("1 deferred"))
        .await;
    app.drain().await;
    assert_eq!(app.get_email(&id).await.status, "delivered");
}
