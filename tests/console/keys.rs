//! The keys page: a key created in the page is shown once and works over the API; its
//! limits change from the page; revoking it there locks it out.

use super::forms::Visitor;
use crate::support::{
    app::{TestApp, spawn_app},
    browser::Browser,
};

/// The key `id` as `GET /v1/api-keys` lists it.
async fn listed_key(app: &TestApp, id: &str) -> serde_json::Value {
    app.list_api_keys()
        .await
        .data
        .into_iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("key {id} is not listed"))
}

#[tokio::test]
async fn a_key_is_created_shown_once_limited_and_revoked() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &app.key).await;
    browser.click("nav a[href='/console/keys']").await;
    browser
        .wait_for_path("the keys", |p| p == "/console/keys")
        .await;

    browser.fill("#k-name", "reporting").await;
    browser.click("#scope-messages").await;
    browser.click("#create-key button[type=submit]").await;
    let key = browser
        .wait_for_text("#new-key", |t| t.starts_with("mg_live_"))
        .await;
    let (status, _) = app
        .call_as(&key, reqwest::Method::GET, "/v1/emails", None)
        .await;
    assert_eq!(status, 200, "the new key works");
    let (status, _) = app
        .call_as(&key, reqwest::Method::GET, "/v1/templates", None)
        .await;
    assert_eq!(status, 403, "with only the scopes ticked");
    browser.screenshot("keys", 1280).await;
    browser.screenshot("keys", 390).await;
    // Shown once: the list shows its prefix only.
    browser.goto(&app.url("/console/keys")).await;
    assert!(browser.find_all("#new-key").await.is_empty());
    assert!(!browser.text("table.keys").await.contains(&key));

    let id = app
        .list_api_keys()
        .await
        .data
        .iter()
        .find(|k| k["name"] == "reporting")
        .map(|k| k["id"].as_str().unwrap().to_string())
        .unwrap();
    browser.fill(&format!("[id='rate-{id}']"), "5").await;
    browser.fill(&format!("[id='burst-{id}']"), "10").await;
    browser
        .click(&format!("form[action='/console/keys/{id}/limits'] button"))
        .await;
    browser
        .wait_for_path("the limits saved", |p| p.contains("done=limits"))
        .await;
    let info = listed_key(&app, &id).await;
    assert_eq!(info["rate_per_sec"], 5.0);
    assert_eq!(info["burst"], 10);
    assert!(info["daily_quota"].is_null());

    browser
        .click(&format!("form[action='/console/keys/{id}/revoke'] button"))
        .await;
    browser.accept_dialog().await;
    browser
        .wait_for_path("revoked", |p| p.contains("done=revoked"))
        .await;
    // The page said so once the key was revoked: the API lists it revoked, and refuses it
    // at once (revoking forgets the key in the process's key cache).
    let revoked = listed_key(&app, &id).await;
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (status, _) = app
        .call_as(&key, reqwest::Method::GET, "/v1/emails", None)
        .await;
    assert_eq!(status, 401, "the revoked key is refused");
}

#[tokio::test]
async fn a_key_without_the_keys_scope_has_no_keys_page() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "messages", false).await;
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &key).await;
    assert!(
        browser
            .find_all("nav a[href='/console/keys']")
            .await
            .is_empty()
    );
    browser.goto(&app.url("/console/keys")).await;
    assert!(browser.text("h1").await.starts_with("403"));
    assert!(browser.text("body").await.contains("`keys` scope"));
}

/// Signed in with a key, the page acts with the key's power and no more, as the API does:
/// it offers only the key's own scopes, and a form asking for another scope or for limits
/// above the key's own is refused with a 403 page naming them.
#[tokio::test]
async fn a_key_signed_in_gives_no_more_than_it_holds() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "keys,messages", false).await;
    let id = app
        .list_api_keys()
        .await
        .data
        .into_iter()
        .find(|k| k["scopes"] == serde_json::json!(["keys", "messages"]))
        .map(|k| k["id"].as_str().unwrap().to_string())
        .unwrap();
    let mut visitor = Visitor::new(&app);
    assert_eq!(visitor.sign_in(&key).await.status(), 303);
    let page = visitor.get("/console/keys").await.text().await.unwrap();
    assert!(page.contains("id=\"scope-messages\""), "{page}");
    assert!(
        !page.contains("id=\"scope-send\""),
        "only the key's own scopes are offered"
    );

    let csrf = visitor.csrf().await;
    let response = visitor
        .post(
            "/console/keys",
            &[("csrf", &csrf), ("scopes", "send"), ("scopes", "messages")],
        )
        .await;
    assert_eq!(response.status(), 403);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("`send`"),
        "the refusal names the scope: {page}"
    );
    assert_eq!(app.list_api_keys().await.data.len(), 2, "no key was made");

    // Its own limits are the defaults (100000 per second in the tests): not above.
    let limits = format!("/console/keys/{id}/limits");
    let response = visitor
        .post(
            &limits,
            &[
                ("csrf", &csrf),
                ("rate_per_sec", "1000000"),
                ("burst", ""),
                ("daily_quota", ""),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    let page = response.text().await.unwrap();
    assert!(page.contains("rate_per_sec"), "{page}");
    assert!(listed_key(&app, &id).await["rate_per_sec"].is_null());
    // Lowering is the key's to do.
    let response = visitor
        .post(
            &limits,
            &[
                ("csrf", &csrf),
                ("rate_per_sec", "5"),
                ("burst", ""),
                ("daily_quota", ""),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(listed_key(&app, &id).await["rate_per_sec"], 5.0);
}
