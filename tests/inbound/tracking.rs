//! Opens and clicks: the HTML part is instrumented at accept; the pixel and the redirect,
//! fetched by a real HTTP client, record `opened` and `clicked`.

use serde_json::json;

use super::inbound_app;
use crate::support::{
    app::relay_to, smtp_server::TestSmtpServer, webhook_receiver::WebhookReceiver,
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

    // The pixel, twice: the first open is flagged.
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
    assert_eq!(opened.len(), 2, "{email:#}");
    assert_eq!(opened[0].data["first_open"], true);
    assert_eq!(opened[1].data["first_open"], false);
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

    let got = receiver.wait_until(super::WAIT, |got| got.len() >= 3).await;
    for hook in &got {
        hook.verify(&secret).unwrap();
    }
    // Webhooks to one endpoint go out up to `per_endpoint_concurrency` at a time, so they may
    // arrive in any order (timing decides: over TLS to Postgres the click often came first).
    let mut types: Vec<String> = got.iter().map(|r| r.event_type()).collect();
    types.sort();
    assert_eq!(types, ["email.clicked", "email.opened", "email.opened"]);
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
