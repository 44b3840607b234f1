//! The suppression list page: an address added in the page is suppressed for the API too,
//! and removing it in the page mails it again.

use crate::support::{app::spawn_app, browser::Browser};

#[tokio::test]
async fn an_address_is_added_and_removed_in_the_page() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &app.key).await;
    browser.click("nav a[href='/console/suppressions']").await;
    browser
        .wait_for_path("the list", |p| p == "/console/suppressions")
        .await;
    assert!(
        browser
            .text("table.suppressions")
            .await
            .contains("No suppressed addresses")
    );

    browser.fill("#add-email", "Grace@Example.com").await;
    browser.fill("#add-detail", "asked by phone").await;
    browser.click("#add-suppression button").await;
    browser
        .wait_for_path("the new entry", |p| p.contains("done=added"))
        .await;
    let table = browser.text("table.suppressions").await;
    assert!(
        table.contains("grace@example.com") && table.contains("asked by phone"),
        "{table}"
    );
    assert_eq!(
        app.get_suppression("grace@example.com").await["reason"],
        "manual"
    );
    browser.screenshot("suppressions", 1280).await;
    browser.screenshot("suppressions", 390).await;

    // A bad address is named, as the API names it.
    browser.fill("#add-email", "not an address").await;
    browser
        .execute(
            "document.getElementById('add-suppression').submit();",
            serde_json::json!([]),
        )
        .await;
    browser.wait_for_text("h1", |t| t.starts_with("422")).await;
    assert!(browser.text("body").await.contains("email"));

    browser.goto(&app.url("/console/suppressions")).await;
    browser.click("table.suppressions button").await;
    assert!(browser.dialog().await.is_some());
    browser.accept_dialog().await;
    browser
        .wait_for_path("the list after removing", |p| p.contains("done=removed"))
        .await;
    assert!(
        browser
            .text("table.suppressions")
            .await
            .contains("No suppressed addresses")
    );
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            "/v1/suppressions/grace@example.com",
            None,
        )
        .await;
    assert_eq!(status, 404);
}
