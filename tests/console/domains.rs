//! The Domains page over HTTP: a domain added in the page lists its records, is verified
//! against a DNS server on loopback once they are published, rotates its DKIM key and is
//! deleted, all through the same operations as `/v1/domains`; a key without the `domains`
//! scope is refused as the API refuses it; what DNS holds prints as text; and nothing
//! changes for a form without the session's CSRF token.

use reqwest::{Method, header};
use serde_json::Value;

use crate::{
    forms::{Visitor, hidden_value},
    support::{
        app::{JWT_SECRET, TestApp},
        browser::Browser,
        dns_server::TestDns,
    },
};

const SCRIPT: &str = "<script>alert(1)</script>";

async fn api_domain(app: &TestApp, id: &str) -> (u16, Value) {
    app.call(Method::GET, &format!("/v1/domains/{id}"), None)
        .await
}

fn record<'a>(domain: &'a Value, kind: &str) -> &'a Value {
    domain["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["record"] == kind)
        .unwrap_or_else(|| panic!("no {kind} record in {domain:#}"))
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string()
}

/// The page's text, after a redirect to it.
async fn follow(visitor: &mut Visitor<'_>, response: reqwest::Response) -> String {
    assert_eq!(response.status(), 303, "a redirect to the page");
    let page = visitor.get(&location(&response)).await;
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

#[tokio::test]
async fn a_domain_is_added_verified_rotated_and_deleted_in_the_page() {
    let dns = TestDns::start().await;
    let app = TestApp::builder()
        .configure(|c| {
            c.dns.nameservers = vec![dns.addr.to_string()];
            c.dns.timeout_ms = 1000;
            c.domains.spf_include = Some("_spf.relay.test".into());
        })
        .start()
        .await;
    let mut visitor = Visitor::new(&app);
    visitor.sign_in(&app.key).await;
    let list = visitor.get("/console/domains").await;
    assert_eq!(list.status(), 200);
    let list = list.text().await.unwrap();
    assert!(list.contains("No sending domains yet"), "{list}");
    assert!(
        list.contains("href=\"/console/domains\""),
        "in the navigation"
    );
    let csrf = hidden_value(&list, "csrf").unwrap();

    // Without the session's token nothing is added.
    let refused = visitor
        .post("/console/domains", &[("name", "shop.test")])
        .await;
    assert_eq!(refused.status(), 403);
    let (_, all) = app.call(Method::GET, "/v1/domains", None).await;
    assert_eq!(all["data"], serde_json::json!([]));

    // A name that is no domain is refused as the API refuses it, and echoed as text.
    let bad = visitor
        .post("/console/domains", &[("csrf", &csrf), ("name", SCRIPT)])
        .await;
    assert_eq!(bad.status(), 422);
    let bad = bad.text().await.unwrap();
    assert!(!bad.contains(SCRIPT), "{bad}");

    let added = visitor
        .post(
            "/console/domains",
            &[("csrf", &csrf), ("name", "Shop.Test")],
        )
        .await;
    let path = location(&added);
    assert!(path.ends_with("?done=added"), "{path}");
    let id = path
        .trim_start_matches("/console/domains/")
        .trim_end_matches("?done=added")
        .to_string();
    let page = follow(&mut visitor, added).await;
    let (status, domain) = api_domain(&app, &id).await;
    assert_eq!(status, 200);
    assert_eq!(domain["name"], "shop.test");
    // Every record the API lists, with its value, as text to copy.
    for r in domain["records"].as_array().unwrap() {
        for field in ["name", "value"] {
            let text = r[field].as_str().unwrap();
            assert!(page.contains(text), "{field} {text} not on the page");
        }
    }
    assert!(page.contains("id=\"domain-status\">not_started<"), "{page}");
    assert!(!page.to_lowercase().contains("private"), "{page}");
    let listed = visitor.get("/console/domains").await.text().await.unwrap();
    assert!(
        listed.contains(&format!("href=\"/console/domains/{id}\">shop.test<")),
        "{listed}"
    );

    // A DKIM record with script in it: the page says what was found, as text.
    let dkim = record(&domain, "DKIM");
    let dkim_name = dkim["name"].as_str().unwrap();
    dns.txt(dkim_name, &format!("v=DKIM1; p={SCRIPT}"));
    let checked = visitor
        .post(&format!("/console/domains/{id}/verify"), &[("csrf", &csrf)])
        .await;
    let page = follow(&mut visitor, checked).await;
    assert!(!page.contains(SCRIPT), "{page}");
    assert!(page.contains("p=&lt;script&gt;alert(1)"), "{page}");
    assert!(page.contains("id=\"domain-status\">pending<"), "{page}");

    // Published as asked: verified, in the page and in the API.
    dns.set_txt(dkim_name, dkim["value"].as_str().unwrap());
    let spf = record(&domain, "SPF");
    dns.txt(
        spf["name"].as_str().unwrap(),
        spf["value"].as_str().unwrap(),
    );
    let checked = visitor
        .post(&format!("/console/domains/{id}/verify"), &[("csrf", &csrf)])
        .await;
    let page = follow(&mut visitor, checked).await;
    assert!(page.contains("id=\"domain-status\">verified<"), "{page}");
    assert_eq!(api_domain(&app, &id).await.1["status"], "verified");

    // Rotation: the pending key's record is shown, and the API has the same pending key.
    let rotated = visitor
        .post(
            &format!("/console/domains/{id}/rotate-dkim"),
            &[("csrf", &csrf)],
        )
        .await;
    let page = follow(&mut visitor, rotated).await;
    let (_, domain) = api_domain(&app, &id).await;
    let pending = domain["dkim"]["pending_selector"].as_str().unwrap();
    assert!(page.contains("id=\"pending-key\""), "{page}");
    assert!(
        page.contains(&format!("{pending}._domainkey.shop.test")),
        "{page}"
    );
    // The new key's record published and seen: it signs, and the old record is removable.
    let new_record = domain["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == format!("{pending}._domainkey.shop.test"))
        .unwrap();
    dns.txt(
        new_record["name"].as_str().unwrap(),
        new_record["value"].as_str().unwrap(),
    );
    let checked = visitor
        .post(&format!("/console/domains/{id}/verify"), &[("csrf", &csrf)])
        .await;
    let page = follow(&mut visitor, checked).await;
    assert!(page.contains("id=\"removable\""), "{page}");
    assert!(page.contains(dkim_name), "{page}");

    // Deleting without the token changes nothing; with it, the domain is gone for the API.
    let refused = visitor
        .post(&format!("/console/domains/{id}/delete"), &[("csrf", "")])
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(api_domain(&app, &id).await.0, 200);
    let deleted = visitor
        .post(&format!("/console/domains/{id}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&deleted), "/console/domains?done=deleted");
    assert_eq!(api_domain(&app, &id).await.0, 404);
}

#[tokio::test]
async fn a_key_without_the_domains_scope_is_refused_as_on_the_api() {
    let app = TestApp::builder().start().await;
    let (status, domain) = app
        .call(
            Method::POST,
            "/v1/domains",
            Some(serde_json::json!({"name": "shop.test"})),
        )
        .await;
    assert_eq!(status, 201, "{domain:#}");
    let id = domain["id"].as_str().unwrap();
    let narrow = app.create_key("acme", "send,messages", false).await;

    // The API's answer to this key...
    let (status, _) = app.call_as(&narrow, Method::GET, "/v1/domains", None).await;
    assert_eq!(status, 403);
    // ...is the console's.
    let mut visitor = Visitor::new(&app);
    visitor.sign_in(&narrow).await;
    let overview = visitor.get("/console/overview").await.text().await.unwrap();
    assert!(
        !overview.contains("href=\"/console/domains\""),
        "{overview}"
    );
    let csrf = hidden_value(&overview, "csrf").unwrap();
    for path in [
        "/console/domains".to_string(),
        format!("/console/domains/{id}"),
    ] {
        assert_eq!(visitor.get(&path).await.status(), 403, "{path}");
    }
    for action in ["verify", "rotate-dkim", "delete"] {
        let path = format!("/console/domains/{id}/{action}");
        assert_eq!(
            visitor.post(&path, &[("csrf", &csrf)]).await.status(),
            403,
            "{path}"
        );
    }
    let added = visitor
        .post(
            "/console/domains",
            &[("csrf", &csrf), ("name", "other.test")],
        )
        .await;
    assert_eq!(added.status(), 403);
    assert_eq!(
        app.call(Method::GET, &format!("/v1/domains/{id}"), None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_domain_is_added_and_verified_in_the_browser() {
    let dns = TestDns::start().await;
    let app = TestApp::builder()
        .configure(|c| {
            c.dns.nameservers = vec![dns.addr.to_string()];
            c.dns.timeout_ms = 1000;
            c.domains.spf_include = Some("_spf.relay.test".into());
        })
        .start()
        .await;
    let browser = Browser::start().await;
    browser.sign_in(&app.base, &app.key).await;
    browser.click("nav a[href='/console/domains']").await;
    browser
        .wait_for_path("the domains", |p| p == "/console/domains")
        .await;
    browser.fill("#d-name", "shop.test").await;
    browser.click("#add-domain button[type=submit]").await;
    let path = browser
        .wait_for_path("the new domain", |p| p.contains("done=added"))
        .await;
    let id = path
        .trim_start_matches("/console/domains/")
        .trim_end_matches("?done=added")
        .to_string();
    let (_, domain) = app
        .call(Method::GET, &format!("/v1/domains/{id}"), None)
        .await;
    let table = browser.text("table.records").await;
    assert!(
        table.contains(record(&domain, "DKIM")["name"].as_str().unwrap())
            && table.contains("v=spf1 include:_spf.relay.test ~all")
            && table.contains("not_started"),
        "{table}"
    );
    // With the script running, each name and value has a Copy button.
    assert!(!browser.find_all("button.copy").await.is_empty());
    browser.screenshot("domain", 1280).await;
    browser.screenshot("domain", 390).await;

    for kind in ["DKIM", "SPF"] {
        let r = record(&domain, kind);
        dns.txt(r["name"].as_str().unwrap(), r["value"].as_str().unwrap());
    }
    browser.click("#verify-domain button").await;
    browser
        .wait_for_path("checked", |p| p.contains("done=checked"))
        .await;
    assert_eq!(browser.text("#domain-status").await, "verified");
    browser.goto(&app.url("/console/domains")).await;
    assert!(browser.text("table.domains").await.contains("verified"));
    browser.screenshot("domains", 1280).await;
    browser.screenshot("domains", 390).await;
}

/// The operator sees a project's domains once the project is chosen, as on the other pages.
#[tokio::test]
async fn the_operator_sees_the_chosen_projects_domains() {
    let dns = TestDns::start().await;
    let app = TestApp::builder()
        .configure(|c| {
            c.dns.nameservers = vec![dns.addr.to_string()];
            c.dns.timeout_ms = 1000;
        })
        .start()
        .await;
    let (status, domain) = app
        .call(
            Method::POST,
            "/v1/domains",
            Some(serde_json::json!({"name": "shop.test"})),
        )
        .await;
    assert_eq!(status, 201, "{domain:#}");
    let id = domain["id"].as_str().unwrap();
    let token = mailgate::service::gate::mint_operator_token(
        &JWT_SECRET.to_string().into(),
        std::time::Duration::from_secs(600),
    )
    .unwrap();
    let mut visitor = Visitor::new(&app);
    visitor.sign_in(&token).await;
    let unchosen = visitor.get("/console/domains").await;
    assert_eq!(location(&unchosen), "/console/projects");

    let project: uuid::Uuid = sqlx::query_scalar("SELECT id FROM projects WHERE name = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let projects = visitor.get("/console/projects").await.text().await.unwrap();
    let csrf = hidden_value(&projects, "csrf").unwrap();
    let chosen = visitor
        .post(
            "/console/project",
            &[("csrf", &csrf), ("project", &project.to_string())],
        )
        .await;
    assert_eq!(chosen.status(), 303);
    let list = visitor.get("/console/domains").await.text().await.unwrap();
    assert!(
        list.contains(&format!("href=\"/console/domains/{id}\">shop.test<")),
        "{list}"
    );
    let checked = visitor
        .post(&format!("/console/domains/{id}/verify"), &[("csrf", &csrf)])
        .await;
    let page = follow(&mut visitor, checked).await;
    assert!(page.contains("id=\"domain-status\">pending<"), "{page}");
}

/// Issue 28: the page adds a domain with an Ed25519 key beside RSA (both records listed, the
/// selectors named), and changes where DMARC reports go, as `PATCH /v1/domains/{id}` does:
/// refused without the CSRF token, a bad address refused and echoed as text, empty back to
/// the default.
#[tokio::test]
async fn the_page_adds_an_ed25519_key_and_edits_the_dmarc_report_address() {
    let app = TestApp::builder().start().await;
    let mut visitor = Visitor::new(&app);
    visitor.sign_in(&app.key).await;
    let list = visitor.get("/console/domains").await.text().await.unwrap();
    assert!(list.contains("name=\"ed25519\""), "{list}");
    let csrf = hidden_value(&list, "csrf").unwrap();
    let added = visitor
        .post(
            "/console/domains",
            &[("csrf", &csrf), ("name", "duo.test"), ("ed25519", "on")],
        )
        .await;
    let path = location(&added);
    let id = path
        .trim_start_matches("/console/domains/")
        .trim_end_matches("?done=added")
        .to_string();
    let page = follow(&mut visitor, added).await;
    let (_, domain) = api_domain(&app, &id).await;
    let ed = domain["dkim"]["ed25519_selector"]
        .as_str()
        .expect("an Ed25519 key")
        .to_string();
    assert!(
        page.contains(&format!("id=\"ed25519-selector\">{ed}<")),
        "{page}"
    );
    assert!(page.contains("k=ed25519; p="), "{page}");
    assert!(page.contains("mailto:dmarc@duo.test"), "{page}");

    let dmarc = format!("/console/domains/{id}/dmarc");
    let refused = visitor
        .post(&dmarc, &[("dmarc_rua", "mailto:reports@duo.test")])
        .await;
    assert_eq!(refused.status(), 403);
    let bad = visitor
        .post(&dmarc, &[("csrf", &csrf), ("dmarc_rua", SCRIPT)])
        .await;
    assert_eq!(bad.status(), 422);
    assert!(!bad.text().await.unwrap().contains(SCRIPT));
    assert_eq!(api_domain(&app, &id).await.1["dmarc_rua"], Value::Null);

    let saved = visitor
        .post(
            &dmarc,
            &[("csrf", &csrf), ("dmarc_rua", "mailto:reports@duo.test")],
        )
        .await;
    let page = follow(&mut visitor, saved).await;
    assert!(
        page.contains("v=DMARC1; p=none; rua=mailto:reports@duo.test"),
        "{page}"
    );
    assert!(
        page.contains("value=\"mailto:reports@duo.test\""),
        "the form shows the current address: {page}"
    );
    let (_, domain) = api_domain(&app, &id).await;
    assert_eq!(domain["dmarc_rua"], "mailto:reports@duo.test");
    let dmarc_record = record(&domain, "DMARC");
    assert_eq!(
        dmarc_record["value"],
        "v=DMARC1; p=none; rua=mailto:reports@duo.test"
    );

    // Empty: back to the default address.
    let reset = visitor
        .post(&dmarc, &[("csrf", &csrf), ("dmarc_rua", "")])
        .await;
    assert_eq!(reset.status(), 303);
    assert_eq!(api_domain(&app, &id).await.1["dmarc_rua"], Value::Null);
}
