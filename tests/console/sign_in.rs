//! Signing in and out: keys and operator tokens, the session cookie (`Secure` off loopback),
//! expiry by sign-out, by revoking the key and by a new operator secret, and the
//! failed-authentication throttle (per client, behind trusted proxies).

use crate::{
    forms::Visitor,
    support::{
        app::{JWT_SECRET, TestApp, spawn_app},
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

/// The `Set-Cookie` for `name` in `response`.
fn cookie_set(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

#[tokio::test]
async fn cookies_are_secure_whenever_the_console_is_not_on_loopback() {
    // Reachable from other machines, as in deploy/mailgate.toml: the console is meant to be
    // reached through a TLS proxy, so its cookies never travel over plain HTTP, whatever the
    // proxy says or forgets to say.
    let app = TestApp::builder()
        .configure(|c| c.http_addr = "0.0.0.0:0".parse().unwrap())
        .start()
        .await;
    let mut visitor = Visitor::new(&app);
    let page = visitor.get("/console/sign-in").await;
    let cookie = cookie_set(&page, "mg_console_sign_in");
    assert!(cookie.contains("Secure"), "{cookie}");
    let signed_in = visitor.sign_in(&app.key).await;
    assert_eq!(signed_in.status(), 303);
    let cookie = cookie_set(&signed_in, "mg_console");
    for flag in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert_eq!(visitor.get("/console/overview").await.status(), 200);
}

/// Signs in with `token` through a proxy that says the request came from `client`.
async fn sign_in_from(visitor: &mut Visitor<'_>, client: &str, token: &str) -> reqwest::Response {
    let csrf = visitor.sign_in_token().await;
    visitor
        .post_with(
            "/console/sign-in",
            &[
                ("token", token),
                ("csrf", &csrf),
                ("next", "/console/overview"),
            ],
            &[("x-forwarded-for", client)],
        )
        .await
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_throttle_counts_each_client_not_the_proxy() {
    // Every request reaches mailgate from the proxy on 127.0.0.1, which names the client.
    let app = TestApp::builder()
        .configure(|c| c.http.trusted_proxies = vec!["127.0.0.1".into()])
        .start()
        .await;
    let mut guesser = Visitor::new(&app);
    for _ in 0..10 {
        let refused = sign_in_from(&mut guesser, "198.51.100.7", "mg_live_not-a-real-key").await;
        assert_eq!(refused.status(), 401);
    }
    let throttled = sign_in_from(&mut guesser, "198.51.100.7", &app.key).await;
    assert_eq!(throttled.status(), 429);
    // The guesser's own entries to the left of what the proxy appended change nothing.
    let spoofed = sign_in_from(&mut guesser, "203.0.113.9, 198.51.100.7", &app.key).await;
    assert_eq!(spoofed.status(), 429);
    // The API counts against the same client.
    let api = |client: &'static str| {
        app.http
            .get(app.url("/v1/emails"))
            .bearer_auth(&app.key)
            .header("x-forwarded-for", client)
            .send()
    };
    assert_eq!(api("198.51.100.7").await.unwrap().status(), 429);

    // Another person behind the same proxy signs in and uses the API as usual.
    let mut colleague = Visitor::new(&app);
    let signed_in = sign_in_from(&mut colleague, "198.51.100.8", &app.key).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(api("198.51.100.8").await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_forwarded_for_header_from_an_untrusted_peer_changes_nothing() {
    // No trusted proxies (the default): a client naming itself anew each time is still one
    // address to the throttle.
    let app = spawn_app().await;
    let mut guesser = Visitor::new(&app);
    for i in 0..10 {
        let client = format!("198.51.100.{i}");
        let refused = sign_in_from(&mut guesser, &client, "mg_live_not-a-real-key").await;
        assert_eq!(refused.status(), 401);
    }
    let throttled = sign_in_from(&mut guesser, "198.51.100.200", &app.key).await;
    assert_eq!(throttled.status(), 429);
}

#[tokio::test]
async fn operator_sessions_end_when_the_jwt_secret_changes() {
    let app = spawn_app().await;
    let token = mailgate::service::gate::mint_operator_token(
        &JWT_SECRET.to_string().into(),
        std::time::Duration::from_secs(600),
    )
    .unwrap();
    let mut operator = Visitor::new(&app);
    assert_eq!(operator.sign_in(&token).await.status(), 303);
    let mut member = Visitor::new(&app);
    assert_eq!(member.sign_in(&app.key).await.status(), 303);
    assert_eq!(operator.get("/console/projects").await.status(), 200);
    let (operator_cookies, member_cookies) = (operator.cookies, member.cookies);

    // The secret is rotated (say it leaked): mailgate restarts with a new one.
    let db = app.database_url.clone();
    app.stop().await;
    let rotated = TestApp::builder()
        .on_database(&db)
        .configure(|c| c.jwt_secret = Some("a-new-operator-secret".to_string().into()))
        .start()
        .await;
    // The operator's browser comes back with its cookie: sent to sign in again.
    let mut same_browser = Visitor::new(&rotated);
    same_browser.cookies = operator_cookies;
    let page = same_browser.get("/console/projects").await;
    assert_eq!(page.status(), 303);
    assert!(
        page.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/console/sign-in"),
        "{:?}",
        page.headers()
    );
    // A session signed in with an API key has nothing to do with the secret.
    let mut member_again = Visitor::new(&rotated);
    member_again.cookies = member_cookies;
    assert_eq!(member_again.get("/console/overview").await.status(), 200);
    // A token of the new secret signs in.
    let token = mailgate::service::gate::mint_operator_token(
        &"a-new-operator-secret".to_string().into(),
        std::time::Duration::from_secs(600),
    )
    .unwrap();
    let mut operator = Visitor::new(&rotated);
    assert_eq!(operator.sign_in(&token).await.status(), 303);
    assert_eq!(operator.get("/console/projects").await.status(), 200);
}
