//! Signing in and out: keys and operator tokens, the session cookie, expiry by sign-out and
//! by revoking the key, and the failed-authentication throttle.

use crate::{
    forms::Visitor,
    support::{
        app::{JWT_SECRET, spawn_app},
        browser::Browser,
    },
};

#[tokio::test]
async fn a_key_signs_in_sees_its_project_and_signing_out_sends_every_page_to_sign_in() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    // A page asked for before signing in comes back after it.
    browser
        .goto(&app.url("/console/messages?status=delivered"))
        .await;
    let path = browser.path().await;
    assert!(path.starts_with("/console/sign-in?next="), "{path}");
    browser.screenshot("sign-in", 1280).await;
    browser.screenshot("sign-in", 390).await;
    browser.fill("#token", &app.key).await;
    browser
        .click("form[action='/console/sign-in'] button")
        .await;
    browser
        .wait_for_path("the page asked for", |p| {
            p == "/console/messages?status=delivered"
        })
        .await;
    assert!(browser.text(".who").await.contains("Project acme"));

    browser.click(".who button").await;
    browser
        .wait_for_path("the sign-in page", |p| p.starts_with("/console/sign-in"))
        .await;
    for page in [
        "/console/overview",
        "/console/messages",
        "/console/messages/0190",
    ] {
        browser.goto(&app.url(page)).await;
        let path = browser.path().await;
        assert!(
            path.starts_with("/console/sign-in"),
            "{page} went to {path}"
        );
    }
}

#[tokio::test]
async fn the_session_cookie_is_http_only_same_site_strict_and_secure_behind_https() {
    let app = spawn_app().await;
    let mut visitor = Visitor::new(&app);
    let csrf = visitor.sign_in_token().await;
    let signed_in = visitor
        .post_with(
            "/console/sign-in",
            &[("token", &app.key), ("csrf", &csrf)],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("mg_console="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    // Over plain HTTP (no proxy saying otherwise) the cookie cannot be Secure.
    let mut plain = Visitor::new(&app);
    let response = plain.sign_in(&app.key).await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && !cookie.contains("Secure"),
        "{cookie}"
    );
    // The console's pages forbid framing and inline script.
    let page = plain.get("/console/overview").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    // The console's address, with or without the slash, leads to the overview.
    for root in ["/console", "/console/"] {
        let page = plain.get(root).await;
        assert_eq!(page.status(), 303, "{root}");
        assert_eq!(page.headers()["location"], "/console/overview", "{root}");
    }
}

#[tokio::test]
async fn revoking_the_key_ends_its_sessions_and_the_operator_signs_in_with_a_token() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "messages", false).await;
    let mut visitor = Visitor::new(&app);
    assert_eq!(visitor.sign_in(&key).await.status(), 303);
    assert_eq!(visitor.get("/console/overview").await.status(), 200);
    let keys = app.list_api_keys().await;
    let id = keys
        .data
        .iter()
        .find(|k| key.starts_with(k["prefix"].as_str().unwrap()))
        .map(|k| k["id"].as_str().unwrap().to_string())
        .unwrap();
    app.revoke_api_key(&id).await;
    let after = visitor.get("/console/overview").await;
    assert_eq!(after.status(), 303);
    assert!(
        after.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/console/sign-in")
    );

    // The operator: every project, chosen on the projects page.
    let token = mailgate::service::gate::mint_operator_token(
        &JWT_SECRET.to_string().into(),
        std::time::Duration::from_secs(600),
    )
    .unwrap();
    let mut operator = Visitor::new(&app);
    assert_eq!(operator.sign_in(&token).await.status(), 303);
    let overview = operator.get("/console/overview").await;
    assert_eq!(overview.status(), 303, "no project chosen yet");
    assert_eq!(overview.headers()["location"], "/console/projects");
    let projects = operator
        .get("/console/projects")
        .await
        .text()
        .await
        .unwrap();
    assert!(projects.contains("acme"), "{projects}");
    let queue = operator.get("/console/queue").await;
    assert_eq!(queue.status(), 200);
    // A key is no operator.
    let mut member = Visitor::new(&app);
    member.sign_in(&app.key).await;
    assert_eq!(member.get("/console/queue").await.status(), 403);
    assert_eq!(member.get("/console/projects").await.status(), 403);
}

#[tokio::test]
async fn wrong_keys_are_refused_then_throttled_like_the_api() {
    let app = spawn_app().await;
    let mut visitor = Visitor::new(&app);
    // The default allowance is 10 failures a minute per address.
    for _ in 0..10 {
        let refused = visitor.sign_in("mg_live_not-a-real-key").await;
        assert_eq!(refused.status(), 401);
        assert!(refused.text().await.unwrap().contains("not valid"));
    }
    let throttled = visitor.sign_in(&app.key).await;
    assert_eq!(throttled.status(), 429);
    assert!(
        throttled
            .text()
            .await
            .unwrap()
            .contains("too many failed authentications")
    );
    // It is the API's throttle: the API refuses this address too.
    let (status, _) = app.call(reqwest::Method::GET, "/v1/emails", None).await;
    assert_eq!(status, 429);
}
