//! One-click unsubscribe (RFC 8058): a send with `unsubscribe` carries `List-Unsubscribe` and
//! `List-Unsubscribe-Post`, both inside the DKIM signature; a real HTTP client POSTing the
//! RFC 8058 body to the link suppresses the recipient and sends `email.unsubscribed`, a GET
//! changes nothing, and an edited token is a 404.

use std::time::Duration;

use mailgate::config::DkimAlgorithm;
use serde_json::{Value, json};

use crate::support::{
    app::TestApp,
    dkim::{generate, signature_header, tag, verifies},
    smtp_server::TestSmtpServer,
    webhook_receiver::WebhookReceiver,
};

const WAIT: Duration = Duration::from_secs(20);
/// Where the links point; the tests call the same paths on the app itself.
const BASE: &str = "https://mail.example.test";
/// What a mailbox provider POSTs (RFC 8058 §3.1), as `application/x-www-form-urlencoded`.
const RFC_8058_BODY: &str = "List-Unsubscribe=One-Click";

/// The unfolded value of header `name` in relayed MIME.
fn header(mime: &str, name: &str) -> Option<String> {
    let head = mime.split("\r\n\r\n").next().unwrap();
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if n.eq_ignore_ascii_case(name) {
            let mut value = v.trim().to_string();
            while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                value.push(' ');
                value.push_str(next.trim());
                lines.next();
            }
            return Some(value);
        }
    }
    None
}

/// The path of the `List-Unsubscribe` link, `/u/<token>`.
fn unsubscribe_path(mime: &str) -> String {
    let value = header(mime, "List-Unsubscribe").expect("a List-Unsubscribe header");
    let url = value
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or_else(|| panic!("not <url>: {value}"));
    let path = url
        .strip_prefix(BASE)
        .unwrap_or_else(|| panic!("not under {BASE}: {url}"));
    assert!(path.starts_with("/u/"), "{path}");
    path.to_string()
}

async fn suppression(app: &TestApp, email: &str) -> Option<Value> {
    let r = app.get(&format!("/v1/suppressions/{email}")).await;
    match r.status().as_u16() {
        200 => Some(r.json().await.unwrap()),
        404 => None,
        other => panic!("GET /v1/suppressions/{email}: {other}"),
    }
}

#[tokio::test]
async fn one_click_post_suppresses_the_recipient_and_the_headers_are_dkim_signed() {
    let key = generate("example.com", DkimAlgorithm::RsaSha256);
    let smtp = TestSmtpServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let app = TestApp::builder()
        .relaying_to(&smtp)
        .webhooks_to_loopback()
        .configure(|c| {
            c.dkim = vec![key.config.clone()];
            c.tracking.base_url = Some(format!("{BASE}/"));
        })
        .start()
        .await;
    let (_, secret) = app
        .create_webhook(&json!({"url": receiver.url("/hook"), "events": ["email.unsubscribed"]}))
        .await;
    let id = app
        .send_ok(&json!({
            "from": "News <news@example.com>", "to": "Ada <ada@example.org>",
            "subject": "This week", "text": "Hello", "unsubscribe": true,
        }))
        .await;
    app.wait_for_status(&id, &["delivered"], WAIT).await;
    let relayed = smtp.wait_for(1, WAIT).await[0].clone();
    let mime = relayed.text();

    // The two headers, and both inside a signature an independent verifier accepts.
    assert_eq!(
        header(&mime, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click"),
        "{mime}"
    );
    let path = unsubscribe_path(&mime);
    let sig = signature_header(&relayed.data).expect("signed");
    let signed = tag(&sig, "h").unwrap().to_ascii_lowercase();
    for h in ["list-unsubscribe", "list-unsubscribe-post"] {
        assert!(signed.split(':').any(|s| s == h), "{h} not in h={signed}");
    }
    assert!(verifies(&relayed.data, &key), "dkimpy rejects:\n{mime}");
    let other_link = mime.replacen("/u/", "/u/x", 1);
    assert!(
        !verifies(other_link.as_bytes(), &key),
        "an edited link must break the signature"
    );

    // A GET (a mail scanner, a link preview) shows a page and changes nothing.
    let r = app.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = r.text().await.unwrap();
    assert!(
        page.contains("List-Unsubscribe") && page.contains("One-Click"),
        "{page}"
    );
    assert!(
        !page.contains("ada"),
        "the page shows nothing of the recipient: {page}"
    );
    assert!(suppression(&app, "ada@example.org").await.is_none());

    // A POST without the RFC 8058 body is refused, and changes nothing either.
    let r = app.http.post(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(suppression(&app, "ada@example.org").await.is_none());

    // An edited token is a 404, whatever the method.
    let mut tampered = path.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let r = app
            .http
            .request(method.clone(), app.url(&tampered))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(RFC_8058_BODY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {tampered}");
    }
    assert!(suppression(&app, "ada@example.org").await.is_none());

    // The one-click POST, as a mailbox provider sends it.
    let r = app
        .http
        .post(app.url(&path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(RFC_8058_BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let entry = suppression(&app, "ada@example.org")
        .await
        .expect("suppressed");
    assert_eq!(entry["reason"], "unsubscribe", "{entry}");
    // A second POST (a provider retrying) is fine and records nothing new.
    let r = app
        .http
        .post(app.url(&path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(RFC_8058_BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let got = receiver.wait_until(WAIT, |got| !got.is_empty()).await;
    got[0].verify(&secret).unwrap();
    let hook = got[0].json();
    assert_eq!(hook["type"], "email.unsubscribed", "{hook}");
    assert_eq!(hook["data"]["email_id"], id.as_str(), "{hook}");
    assert_eq!(hook["data"]["recipient"], "ada@example.org", "{hook}");
    let email = app.get_email(&id).await;
    assert_eq!(email.events_of("unsubscribed").len(), 1, "{email:#}");

    // The address is now suppressed: the next send to it is not relayed.
    let next = app
        .send_ok(&json!({"from": "news@example.com", "to": "ada@example.org", "subject": "x", "text": "x"}))
        .await;
    app.wait_for_status(&next, &["suppressed"], WAIT).await;
}

#[tokio::test]
async fn unsubscribe_needs_one_recipient_and_a_base_url() {
    let smtp = TestSmtpServer::start().await;
    let app = TestApp::builder()
        .relaying_to(&smtp)
        .configure(|c| c.tracking.base_url = Some(BASE.into()))
        .start()
        .await;
    let field_errors = |body: &Value| -> Vec<String> {
        body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_string())
            .collect()
    };

    // Several recipients share one MIME copy, so one link cannot name each: refused, pointing
    // at a batch.
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/v1/emails",
            Some(
                json!({"from": "news@example.com", "to": ["a@example.org"], "bcc": "b@example.org",
                        "subject": "x", "text": "x", "unsubscribe": true}),
            ),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(field_errors(&body), ["unsubscribe"], "{body}");
    assert!(body.to_string().contains("batch"), "{body}");
    // mailgate writes the headers itself.
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/v1/emails",
            Some(json!({"from": "news@example.com", "to": "a@example.org", "subject": "x", "text": "x",
                        "unsubscribe": true, "headers": {"List-Unsubscribe": "<mailto:u@example.com>"}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(field_errors(&body), ["headers.List-Unsubscribe"], "{body}");

    // A batch makes one message per recipient, each with its own link.
    let r = app
        .post_batch_raw(
            &app.key,
            &json!([
                {"from": "news@example.com", "to": "a@example.org", "subject": "x", "text": "x", "unsubscribe": true},
                {"from": "news@example.com", "to": "b@example.org", "subject": "x", "text": "x", "unsubscribe": true},
            ]),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let statuses: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 202], "{body}");
    app.drain().await;
    let got = smtp.wait_for(2, WAIT).await;
    let links: Vec<String> = got.iter().map(|m| unsubscribe_path(&m.text())).collect();
    assert_ne!(links[0], links[1]);
    // Without unsubscribe, no header.
    app.send_ok(
        &json!({"from": "news@example.com", "to": "c@example.org", "subject": "x", "text": "x"}),
    )
    .await;
    app.drain().await;
    let plain = smtp.wait_for(3, WAIT).await[2].text();
    assert!(header(&plain, "List-Unsubscribe").is_none(), "{plain}");

    // Without a base URL there is nowhere to point the link: refused, not sent without one.
    let bare = TestApp::builder().relaying_to(&smtp).start().await;
    let (status, body) = bare
        .call(
            reqwest::Method::POST,
            "/v1/emails",
            Some(json!({"from": "news@example.com", "to": "a@example.org", "subject": "x", "text": "x",
                        "unsubscribe": true})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("tracking.base_url"), "{body}");
}

/// The size limit applies to the message as stored: one that fits without the unsubscribe
/// headers but not with them is a 413, not relayed over the limit.
#[tokio::test]
async fn the_size_limit_counts_the_unsubscribe_headers() {
    const MAX: usize = 4096;
    let app = TestApp::builder()
        .configure(|c| {
            c.tracking.base_url = Some(BASE.into());
            c.http.max_message_bytes = MAX;
        })
        .start()
        .await;
    let body = |lines: usize, unsubscribe: bool| {
        json!({"from": "news@example.com", "to": "ada@example.org", "subject": "x",
               "text": "xxxxxxxxx\n".repeat(lines), "unsubscribe": unsubscribe})
    };
    // Each line is 11 bytes of MIME: measure one message, then fill to just under the limit.
    let probe = app.send_ok(&body(10, false)).await;
    let size = app.get_source(&probe).await.len();
    let lines = 10 + (MAX - size - 40) / 11;
    let near = app.send_ok(&body(lines, false)).await;
    let near_size = app.get_source(&near).await.len();
    assert!(
        (MAX - 60..=MAX).contains(&near_size),
        "{near_size} should be just under {MAX}"
    );
    let r = app.post_email_raw(&app.key, &body(lines, true)).await;
    assert_eq!(r.status(), 413);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("unsubscribe headers"),
        "{problem}"
    );
}

/// Anonymous POSTs are bounded like tracking hits: `tracking.per_token_per_minute` per link and
/// `per_ip_per_minute` per client. Beyond them the answer is a 429 and nothing is written.
#[tokio::test]
async fn posts_beyond_the_tracking_limits_are_refused_and_write_nothing() {
    let app = TestApp::builder()
        .configure(|c| {
            c.tracking.base_url = Some(BASE.into());
            // One unit back every 20 s (the client) and 30 s (a link): none within this test.
            c.tracking.per_ip_per_minute = 3;
            c.tracking.per_token_per_minute = 2;
        })
        .start()
        .await;
    let mut links = Vec::new();
    for to in ["a@example.org", "b@example.org"] {
        let id = app
            .send_ok(
                &json!({"from": "news@example.com", "to": to, "subject": "x", "text": "x",
                             "unsubscribe": true}),
            )
            .await;
        links.push(unsubscribe_path(&app.get_source(&id).await));
    }
    let post = async |path: &str| {
        app.http
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(RFC_8058_BODY)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // Link a: its 2, then refused (the client has spent 3).
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(post(&links[0]).await);
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert!(suppression(&app, "a@example.org").await.is_some());
    // Link b, from the same client: refused before anything is written.
    assert_eq!(post(&links[1]).await, 429);
    assert!(suppression(&app, "b@example.org").await.is_none());
    // A GET still shows its page: it writes nothing and costs no unit.
    let r = app.http.get(app.url(&links[1])).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// A project's `unsubscribe_default` gives sends that do not say the headers, when they have
/// one recipient; a send with several, one that says `false`, or one with its own
/// `List-Unsubscribe` goes without. Without `tracking.base_url` the default is refused.
#[tokio::test]
async fn the_project_default_applies_to_sends_with_one_recipient() {
    let smtp = TestSmtpServer::start().await;
    let app = TestApp::builder()
        .relaying_to(&smtp)
        .configure(|c| c.tracking.base_url = Some(BASE.into()))
        .start()
        .await;
    let operator = mailgate::service::gate::mint_operator_token(
        &crate::support::app::JWT_SECRET.to_string().into(),
        Duration::from_secs(60),
    )
    .unwrap();
    let (status, project) = app
        .call_as(
            &operator,
            reqwest::Method::PATCH,
            "/v1/projects/acme",
            Some(json!({"unsubscribe_default": true})),
        )
        .await;
    assert_eq!(status, 200, "{project}");
    assert_eq!(project["unsubscribe_default"], true, "{project}");

    let send = |extra: Value| {
        let mut body =
            json!({"from": "news@example.com", "to": "a@example.org", "subject": "x", "text": "x"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for body in [
        send(json!({})),
        send(json!({"cc": "b@example.org"})),
        send(json!({"unsubscribe": false})),
        send(json!({"headers": {"List-Unsubscribe": "<mailto:u@example.com>"}})),
    ] {
        app.send_ok(&body).await;
        app.drain().await;
    }
    let got = smtp.wait_for(5, WAIT).await;
    // One transaction per recipient: the cc'd message arrives twice.
    let links: Vec<Option<String>> = got
        .iter()
        .map(|m| header(&m.text(), "List-Unsubscribe"))
        .collect();
    assert!(
        links[0]
            .as_deref()
            .is_some_and(|v| v.starts_with(&format!("<{BASE}/u/"))),
        "the default: {links:?}"
    );
    assert_eq!(links[1], None, "two recipients: none");
    assert_eq!(links[2], None, "two recipients: none");
    assert_eq!(links[3], None, "asked not to");
    assert_eq!(
        links[4].as_deref(),
        Some("<mailto:u@example.com>"),
        "the sender's own header stays, alone"
    );

    // Without a base URL there is nowhere to point the link.
    let bare = TestApp::builder().start().await;
    let (status, body) = bare
        .call_as(
            &operator,
            reqwest::Method::PATCH,
            "/v1/projects/acme",
            Some(json!({"unsubscribe_default": true})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "unsubscribe_default", "{body}");
}
