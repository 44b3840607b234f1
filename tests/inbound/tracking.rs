//! Opens and clicks: the HTML part is instrumented at accept; the pixel and the redirect,
//! fetched by a real HTTP client, record `opened` and `clicked`.

use serde_json::json;

use super::inbound_app;
use crate::support::{
    app::relay_to, eventually::eventually, smtp_server::TestSmtpServer,
    webhook_receiver::WebhookReceiver,
};

/// Where the message's links point; the tests fetch the same paths from the app itself.
const BASE: &str = "https://track.example.test";

fn links(html_source: &str, kind: &str) -> Vec<String> {
    let marker = format!("{BASE}/t/{kind}/");
    html_source
        .match_indices(&marker)
        .map(|(at, _)| {
            let rest = &html_source[at + BASE.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/-_.".contains(c)))
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect()
}

/// The HTML part of relayed MIME, parsed as a mail client would.
fn html_part(mime: &str) -> String {
    mail_parser::MessageParser::new()
        .parse(mime.as_bytes())
        .unwrap()
        .body_html(0)
        .unwrap()
        .into_owned()
}

#[tokio::test]
async fn opens_and_clicks_are_recorded_and_redirect_only_to_the_original() {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = inbound_app()
        .configure(|c| {
            relay_to(c, &smtp);
            c.tracking.base_url = Some(BASE.into());
        })
        .start()
        .await;
    let (_, secret) = app
        .create_webhook(
            &json!({"url": receiver.url("/hook"), "events": ["email.opened", "email.clicked"]}),
        )
        .await;
    let id = app
        .send_ok(&json!({
            "from": "shop@example.com", "to": "ada@example.org", "subject": "Your order",
            "html": "<html><body><p>See <a href=\"https://shop.example/orders/1042?ref=mail&amp;x=1\">your order</a> or <a href=\"mailto:help@shop.example\">write</a>.</p></body></html>",
            "text": "See https://shop.example/orders/1042",
            "track": {"opens": true, "clicks": true}
        }))
        .await;
    app.drain().await;
    let relayed = smtp.received()[0].text();
    // Parse the MIME as a mail client would.
    let parsed = mail_parser::MessageParser::new()
        .parse(relayed.as_bytes())
        .unwrap();
    let html = parsed.body_html(0).unwrap().into_owned();
    let text = parsed.body_text(0).unwrap().into_owned();
    assert!(
        text.contains("https://shop.example/orders/1042"),
        "the text part is untouched"
    );
    assert!(!text.contains(BASE));
    assert!(
        html.contains("mailto:help@shop.example"),
        "only http(s) links change"
    );
    assert!(!html.contains("https://shop.example/orders"), "{html}");
    let opens = links(&html, "o");
    let clicks = links(&html, "c");
    assert_eq!((opens.len(), clicks.len()), (1, 1), "{html}");

    // The pixel, twice: the first open is recorded and flagged, the second only counted.
    let ua = "Mozilla/5.0 (TestMail)";
    for _ in 0..2 {
        let r = app
            .http
            .get(app.url(&opens[0]))
            .header("user-agent", ua)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/gif");
        assert!(!r.bytes().await.unwrap().is_empty());
    }
    // The click: a redirect to exactly the original URL (entity decoded).
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(app.url(&clicks[0]))
        .header("user-agent", ua)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "https://shop.example/orders/1042?ref=mail&x=1"
    );
    // A tampered token is a 404, never a redirect.
    let mut tampered = clicks[0].clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let r = no_redirects.get(app.url(&tampered)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = no_redirects
        .get(app.url("/t/c/aHR0cHM6Ly9ldmlsLmV4YW1wbGU.AAAAAAAAAAAAAAAA"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let email = app.get_email(&id).await;
    let opened = email.events_of("opened");
    assert_eq!(opened.len(), 1, "{email:#}");
    assert_eq!(opened[0].data["first_open"], true);
    assert_eq!(email.opens.as_ref().map(|o| o.count), Some(2), "{email:#}");
    assert_eq!(opened[0].data["user_agent"], ua);
    assert_eq!(opened[0].data["ip"], "127.0.0.1");
    assert_eq!(opened[0].recipient, "ada@example.org");
    let clicked = email.events_of("clicked");
    assert_eq!(
        clicked[0].data["url"],
        "https://shop.example/orders/1042?ref=mail&x=1"
    );
    assert_eq!(
        email.status, "delivered",
        "opens and clicks change no status"
    );

    let got = receiver.wait_until(super::WAIT, |got| got.len() >= 2).await;
    for hook in &got {
        hook.verify(&secret).unwrap();
    }
    // Webhooks to one endpoint go out up to `per_endpoint_concurrency` at a time, so they may
    // arrive in any order (timing decides: over TLS to Postgres the click often came first).
    let mut types: Vec<String> = got.iter().map(|r| r.event_type()).collect();
    types.sort();
    assert_eq!(types, ["email.clicked", "email.opened"]);
    let click = got
        .iter()
        .find(|r| r.event_type() == "email.clicked")
        .unwrap();
    assert_eq!(
        click.json()["data"]["url"],
        "https://shop.example/orders/1042?ref=mail&x=1"
    );
}

#[tokio::test]
async fn tracking_is_off_unless_asked_and_the_project_default_applies() {
    let smtp = TestSmtpServer::start().await;
    let app = inbound_app()
        .configure(|c| {
            relay_to(c, &smtp);
            c.tracking.base_url = Some(BASE.into());
            c.tracking.record_ip = false;
        })
        .start()
        .await;
    let html = "<p><a href=\"https://shop.example/\">shop</a></p>";
    app.send_ok(
        &json!({"from": "shop@example.com", "to": "ada@example.org", "subject": "a", "html": html}),
    )
    .await;
    app.drain().await;
    assert!(!smtp.received()[0].text().contains(BASE), "off by default");
    // The same mail asking for tracking is tracked: the off above is the default at work.
    app.send_ok(
        &json!({"from": "shop@example.com", "to": "ada@example.org", "subject": "a",
                        "html": html, "track": {"opens": true, "clicks": true}}),
    )
    .await;
    app.drain().await;
    let asked = html_part(&smtp.received()[1].text());
    assert_eq!(links(&asked, "o").len(), 1, "asked for opens: {asked}");
    assert_eq!(links(&asked, "c").len(), 1, "asked for clicks: {asked}");

    let (status, body) = app
        .call_as(
            &super::operator_token(),
            reqwest::Method::PATCH,
            "/v1/projects/acme",
            Some(json!({"track_opens": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = app
        .send_ok(&json!({"from": "shop@example.com", "to": "ada@example.org", "subject": "b", "html": html}))
        .await;
    app.drain().await;
    let body = html_part(&smtp.received()[2].text());
    assert_eq!(links(&body, "o").len(), 1, "the project's default: opens");
    assert!(links(&body, "c").is_empty(), "clicks stay off");
    let r = app
        .http
        .get(app.url(&links(&body, "o")[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let email = app.get_email(&id).await;
    assert_eq!(
        email.events_of("opened")[0].data["ip"],
        serde_json::Value::Null
    );
}

/// Sends one tracked message (opens and clicks) with `html` through `smtp`, drains, and
/// returns its id and the paths of its pixel and of its links, as the relayed HTML has them.
async fn tracked(
    app: &crate::support::app::TestApp,
    smtp: &TestSmtpServer,
    html: &str,
) -> (String, String, Vec<String>) {
    let before = smtp.received().len();
    let id = app
        .send_ok(&json!({
            "from": "shop@example.com", "to": "ada@example.org", "subject": "Your order",
            "html": html, "track": {"opens": true, "clicks": true}
        }))
        .await;
    app.drain().await;
    let body = html_part(&smtp.received()[before].text());
    let opens = links(&body, "o");
    assert_eq!(opens.len(), 1, "{body}");
    (id, opens[0].clone(), links(&body, "c"))
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Issue 25: 300 anonymous GETs of one pixel made 300 `opened` events and 300 webhooks per
/// endpoint. Now the first open is the event; the others within `tracking.open_window_secs`
/// are counted on the message.
#[tokio::test]
async fn three_hundred_loads_of_a_pixel_make_one_open_event_and_a_count() {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = inbound_app()
        .configure(|c| {
            relay_to(c, &smtp);
            c.tracking.base_url = Some(BASE.into());
            // The rate limits have their own test: here every load is within them.
            c.tracking.per_ip_per_minute = 0;
            c.tracking.per_token_per_minute = 0;
        })
        .start()
        .await;
    let mut endpoints = Vec::new();
    for path in ["/a", "/b"] {
        let (id, _) = app
            .create_webhook(&json!({"url": receiver.url(path), "events": ["email.opened"]}))
            .await;
        endpoints.push(id);
    }
    let (id, pixel, _) = tracked(
        &app,
        &smtp,
        "<html><body><p>Hi <a href=\"https://shop.example/\">shop</a></p></body></html>",
    )
    .await;

    // 300 loads, 30 at a time, as a mail client (or a scanner) hammering the image would.
    let url = app.url(&pixel);
    let mut loads = tokio::task::JoinSet::new();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(30));
    for _ in 0..300 {
        let (http, url, gate) = (app.http.clone(), url.clone(), gate.clone());
        loads.spawn(async move {
            let _turn = gate.acquire().await.unwrap();
            let r = http.get(&url).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().len())
        });
    }
    while let Some(load) = loads.join_next().await {
        let (status, len) = load.unwrap();
        assert_eq!(status, 200, "every load gets the pixel");
        assert!(len > 0);
    }

    let email = app.get_email(&id).await;
    let opened = email.events_of("opened");
    assert_eq!(opened.len(), 1, "one event for 300 loads: {email:#}");
    assert_eq!(opened[0].data["first_open"], true);
    let opens = email.opens.as_ref().expect("the count is shown");
    assert_eq!(opens.count, 300, "{email:#}");
    assert!(opens.first_at <= opens.last_at);
    // One webhook per endpoint: their delivery logs, where each queued delivery is listed.
    for endpoint in &endpoints {
        let deliveries = app.webhook_deliveries(endpoint).await;
        assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
        assert_eq!(deliveries[0].event_type, "email.opened");
    }
    let got = receiver.wait_until(super::WAIT, |got| got.len() >= 2).await;
    let to = |path: &str| got.iter().filter(|r| r.path == path).count();
    assert_eq!((to("/a"), to("/b")), (1, 1));

    // An hour after the recorded open (the default window), an open is an event again: the
    // clock moved by moving the recorded open back, as the retention tests age messages.
    sqlx::query("UPDATE message_opens SET recorded_at = recorded_at - interval '61 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    let r = app.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let email = app.get_email(&id).await;
    let opened = email.events_of("opened");
    assert_eq!(opened.len(), 2, "{email:#}");
    assert_eq!(opened[1].data["first_open"], false);
    assert_eq!(opened[1].data["opens"], 301);
    assert_eq!(email.opens.unwrap().count, 301);
}

/// Beyond `tracking.per_ip_per_minute` (one client) and `per_token_per_minute` (one link),
/// the reader still gets to the link, but nothing more is recorded.
#[tokio::test]
async fn a_burst_beyond_the_limits_redirects_but_records_nothing_more() {
    let smtp = TestSmtpServer::start().await;
    let app = inbound_app()
        .configure(|c| {
            relay_to(c, &smtp);
            c.tracking.base_url = Some(BASE.into());
            // One unit back every 10 s (the client) and 30 s (a link): none within this test.
            c.tracking.per_ip_per_minute = 6;
            c.tracking.per_token_per_minute = 2;
        })
        .start()
        .await;
    let (id, pixel, clicks) = tracked(
        &app,
        &smtp,
        "<p><a href=\"https://shop.example/a\">a</a> <a href=\"https://shop.example/b\">b</a></p>",
    )
    .await;
    assert_eq!(clicks.len(), 2);
    let http = no_redirects();
    let click = async |path: &str, times: usize| {
        for _ in 0..times {
            let r = http.get(app.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 302, "every click still gets to its link");
            assert!(
                r.headers()["location"]
                    .to_str()
                    .unwrap()
                    .starts_with("https://shop.example/")
            );
        }
    };
    // Link a, 4 times: the link's 2 are recorded; the client has 2 of its 6 left.
    click(&clicks[0], 4).await;
    // Link b, 4 times: the client's last 2 are recorded (b's own 2 are not the limit).
    click(&clicks[1], 4).await;
    // The pixel, 3 times: the client has nothing left.
    for _ in 0..3 {
        let r = app.http.get(app.url(&pixel)).send().await.unwrap();
        assert_eq!(r.status(), 200, "the pixel is still served");
        assert_eq!(r.headers()["content-type"], "image/gif");
    }

    let email = app.get_email(&id).await;
    let urls: Vec<&str> = email
        .events_of("clicked")
        .iter()
        .map(|e| e.data["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            "https://shop.example/a",
            "https://shop.example/a",
            "https://shop.example/b",
            "https://shop.example/b"
        ],
        "{email:#}"
    );
    assert!(email.events_of("opened").is_empty(), "{email:#}");
    assert!(
        email.opens.is_none(),
        "nothing beyond the limit is even counted"
    );
}

/// Issue 25: a link in an old mail stayed a working redirect forever. Once retention deletes
/// the message, its pixel and links are 404, within the limits or beyond them.
#[tokio::test]
async fn tokens_of_a_message_deleted_by_retention_are_404() {
    let smtp = TestSmtpServer::start().await;
    let app = inbound_app()
        .configure(|c| {
            relay_to(c, &smtp);
            c.tracking.base_url = Some(BASE.into());
            c.tracking.per_token_per_minute = 1;
        })
        .start()
        .await;
    let (id, pixel, clicks) = tracked(
        &app,
        &smtp,
        "<p><a href=\"https://shop.example/orders/1\">order</a> <a href=\"https://shop.example/help\">help</a></p>",
    )
    .await;
    let http = no_redirects();
    // The first link works while the message is kept (and uses up its allowance of 1).
    assert_eq!(
        http.get(app.url(&clicks[0])).send().await.unwrap().status(),
        302
    );

    sqlx::query("UPDATE messages SET created_at = now() - interval '40 days' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&id).unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let config = mailgate::config::RetentionConfig::default();
    eventually("the old message deleted", super::WAIT, async || {
        mailgate::retention::purge_once(&app.pool, &config)
            .await
            .unwrap();
        app.get_email_raw(&app.key, &id).await.status() == 404
    })
    .await;

    // The first link beyond its allowance, the second and the pixel within theirs, then
    // beyond: 404 every time, never a redirect or a pixel.
    for round in 0..2 {
        for path in [&clicks[0], &clicks[1], &pixel] {
            let r = http.get(app.url(path)).send().await.unwrap();
            assert_eq!(
                r.status(),
                404,
                "round {round}, {path}: {:?}",
                r.headers().get("location")
            );
        }
    }
}

/// `tracking.record_query = false`: a clicked URL is recorded without its query and fragment
/// (where magic links and reset tokens live), and the reader still goes to the whole URL.
#[tokio::test]
async fn record_query_off_records_clicked_urls_without_their_query() {
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = inbound_app()
        .configure(|c| {
            relay_to(c, &smtp);
            c.tracking.base_url = Some(BASE.into());
            c.tracking.record_query = false;
        })
        .start()
        .await;
    app.create_webhook(&json!({"url": receiver.url("/hook"), "events": ["email.clicked"]}))
        .await;
    let (id, _, clicks) = tracked(
        &app,
        &smtp,
        "<p><a href=\"https://shop.example/reset?token=s3cr3t-reset&amp;u=42#step2\">reset</a></p>",
    )
    .await;
    let r = no_redirects()
        .get(app.url(&clicks[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "https://shop.example/reset?token=s3cr3t-reset&u=42#step2"
    );

    let email = app.get_email(&id).await;
    let clicked = email.events_of("clicked");
    assert_eq!(clicked.len(), 1, "{email:#}");
    assert_eq!(clicked[0].data["url"], "https://shop.example/reset");
    assert!(!email.to_string().contains("s3cr3t"), "{email:#}");
    let got = receiver
        .wait_until(super::WAIT, |got| !got.is_empty())
        .await;
    assert_eq!(got[0].json()["data"]["url"], "https://shop.example/reset");
    assert!(!String::from_utf8_lossy(&got[0].body).contains("s3cr3t"));
}

/// Behind a proxy listed in `http.trusted_proxies`, each client it names has its own
/// allowance, and an IPv6 client is its /64: a reader cannot get more by rotating addresses
/// within its own network.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_and_each_64_has_its_own_allowance() {
    let smtp = TestSmtpServer::start().await;
    let app = inbound_app()
        .configure(|c| {
            relay_to(c, &smtp);
            c.tracking.base_url = Some(BASE.into());
            c.http.trusted_proxies = vec!["127.0.0.1".into()];
            c.tracking.per_ip_per_minute = 2;
            c.tracking.per_token_per_minute = 0;
        })
        .start()
        .await;
    let (id, _, clicks) = tracked(
        &app,
        &smtp,
        "<p><a href=\"https://shop.example/a\">a</a></p>",
    )
    .await;
    let http = no_redirects();
    for client in [
        "198.51.100.7",
        "198.51.100.7",
        "198.51.100.7",
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2:ffff::9",
        "198.51.100.8",
    ] {
        let r = http
            .get(app.url(&clicks[0]))
            .header("x-forwarded-for", client)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
    }
    let email = app.get_email(&id).await;
    let ips: Vec<&str> = email
        .events_of("clicked")
        .iter()
        .map(|e| e.data["ip"].as_str().unwrap())
        .collect();
    assert_eq!(
        ips,
        [
            "198.51.100.7",
            "198.51.100.7",
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "198.51.100.8"
        ],
        "{email:#}"
    );
}
