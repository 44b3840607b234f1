//! Mail submitted over SMTP joins the queue like HTTP mail and is relayed byte for byte.

use std::time::Duration;

use mailgate::Config;
use serde_json::json;

use crate::{
    client::{Connect, Mail, RawClient, queued_id, smtplib_send, swaks},
    support::{
        app::{TestApp, spawn_app_relaying_to},
        smtp_server::TestSmtpServer,
    },
};

const DELIVERED: &[&str] = &["delivered"];
const WAIT: Duration = Duration::from_secs(15);

/// Clients on loopback may send without AUTH, into project `internal`.
pub fn trust_loopback(config: &mut Config) {
    config.smtp.trusted_networks = vec!["127.0.0.0/8".into()];
    config.smtp.trusted_project = Some("internal".into());
}

async fn source(app: &TestApp, key: &str, id: &str) -> Vec<u8> {
    let response = app.get_source_raw(key, id).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// `message` without the header lines (and their folded continuations) starting with `prefix`.
fn without_header(message: &[u8], prefix: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(message);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in format!("{head}\r\n").split_inclusive("\r\n") {
        let folded = line.starts_with(' ') || line.starts_with('\t');
        if line.starts_with(prefix) || (skipping && folded) {
            skipping = true;
            continue;
        }
        skipping = false;
        out.push_str(line);
    }
    format!("{out}\r\n{body}").into_bytes()
}

#[tokio::test]
async fn smtplib_starttls_login_sendmail_is_relayed_byte_exact() {
    let upstream = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&upstream).await;
    // No Message-ID or Date; 8-bit text; a folded tag header; lines that need dot-stuffing.
    let message: &[u8] = b"From: Shop <shop@example.com>\r\n\
To: Ada <ada@example.net>\r\n\
Cc: bob@example.net\r\n\
Subject: Your order\r\n\
X-Mailgate-Tag: orders,\r\n receipts\r\n\
X-Mailgate-Metadata-Order-Id: 1234\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Thanks for your order, caf\xc3\xa9 lover.\r\n\
.a line starting with a dot\r\n\
.\r\n\
\r\n\
X-Mailgate-Tag: body text is never touched\r\n";
    let out = smtplib_send(
        app.smtp_addr.unwrap(),
        Connect::StartTls,
        Some(&app.key),
        &[Mail {
            from: "bounces@example.com",
            to: &["ada@example.net", "bob@example.net", "carol@example.net"],
            data: message,
        }],
    )
    .await;
    assert_eq!(out[0], json!({"login": "ok"}), "{out:?}");
    let reply = out[1]["reply"]
        .as_str()
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(reply.starts_with("2.0.0 queued as "), "{reply}");
    let id = queued_id(reply);

    let email = app.wait_for_status(&id, DELIVERED, WAIT).await;
    assert_eq!(email.from_addr, "bounces@example.com");
    assert_eq!(email.subject, "Your order");
    assert_eq!(email.tags, ["orders", "receipts"]);
    assert_eq!(email.metadata, json!({"Order-Id": "1234"}));
    let kinds: Vec<(&str, &str)> = email
        .recipients
        .iter()
        .map(|r| (r.email.as_str(), r.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("ada@example.net", "to"),
            ("bob@example.net", "cc"),
            ("carol@example.net", "bcc")
        ]
    );
    let events = email.event_types();
    for rcpt in ["ada@example.net", "bob@example.net", "carol@example.net"] {
        assert!(events.contains(&format!("queued:{rcpt}")), "{events:?}");
        assert!(events.contains(&format!("delivered:{rcpt}")), "{events:?}");
    }

    // One transaction per recipient upstream, from the envelope sender.
    let received = upstream.wait_for(3, WAIT).await;
    let mut rcpts: Vec<&str> = received.iter().map(|m| m.rcpt_to[0].as_str()).collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["ada@example.net", "bob@example.net", "carol@example.net"]
    );
    assert!(
        received
            .iter()
            .all(|m| m.mail_from == "bounces@example.com")
    );

    // The relayed bytes: the client's, with Message-ID and Date prepended and the
    // X-Mailgate header lines taken out; nothing else changed.
    let message_id = email.message_id.as_str();
    let data = &received[0].data;
    let head = format!("Message-ID: {message_id}\r\nDate: ");
    assert!(data.starts_with(head.as_bytes()), "{}", received[0].text());
    let after_date = data.iter().position(|&b| b == b'\n').unwrap() + 1;
    let after_date = after_date + data[after_date..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let expected = without_header(message, "X-Mailgate-");
    assert_eq!(
        String::from_utf8_lossy(&data[after_date..]),
        String::from_utf8_lossy(&expected)
    );
    assert!(received.iter().all(|m| m.data == *data));
    assert_eq!(source(&app, &app.key, &id).await, *data);
}

#[tokio::test]
async fn a_complete_message_is_relayed_unchanged() {
    let upstream = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&upstream).await;
    let message: &[u8] = b"Date: Thu, 02 Jan 2025 03:04:05 +0000\r\n\
Message-ID: <own-id-1@example.com>\r\n\
From: a@example.com\r\n\
To: b@example.net\r\n\
Subject: As is\r\n\
\r\n\
Body line one\r\n\
line two\r\n";
    let out = smtplib_send(
        app.smtp_addr.unwrap(),
        Connect::StartTls,
        Some(&app.key),
        &[Mail {
            from: "a@example.com",
            to: &["b@example.net"],
            data: message,
        }],
    )
    .await;
    let id = queued_id(out[1]["reply"].as_str().unwrap());
    let email = app.wait_for_status(&id, DELIVERED, WAIT).await;
    assert_eq!(email.message_id, "<own-id-1@example.com>");
    let received = upstream.wait_for(1, WAIT).await;
    assert_eq!(received[0].data, message.to_vec());
    assert_eq!(source(&app, &app.key, &id).await, message.to_vec());
}

#[tokio::test]
async fn swaks_pipelining_starttls_and_auth_login() {
    let upstream = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&upstream).await;
    let server = app.smtp_addr.unwrap().to_string();
    let (ok, output) = swaks(&[
        "--server",
        &server,
        "--tls",
        "--pipeline",
        "--auth",
        "LOGIN",
        "--auth-user",
        "whoever",
        "--auth-password",
        &app.key,
        "--from",
        "app@example.com",
        "--to",
        "user@example.net",
        "--header",
        "X-Mailgate-Tag: swaks",
    ])
    .await;
    assert!(ok, "swaks failed:\n{output}");
    assert!(output.contains("PIPELINING"), "{output}");
    let line = output
        .lines()
        .find(|l| l.contains("queued as"))
        .unwrap_or_else(|| panic!("no queued reply:\n{output}"));
    let id = queued_id(line);
    let email = app.wait_for_status(&id, DELIVERED, WAIT).await;
    assert_eq!(email.tags, ["swaks"]);
    let received = upstream.wait_for(1, WAIT).await;
    assert!(!received[0].text().contains("X-Mailgate-Tag"));
}

#[tokio::test]
async fn implicit_tls_port_takes_submission_too() {
    let app = TestApp::builder()
        .configure(|c| {
            c.smtp.implicit_tls_addr = Some("127.0.0.1:0".parse().unwrap());
        })
        .start()
        .await;
    let out = smtplib_send(
        app.smtp_tls_addr.unwrap(),
        Connect::ImplicitTls,
        Some(&app.key),
        &[Mail {
            from: "a@example.com",
            to: &["b@example.net"],
            data: b"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n",
        }],
    )
    .await;
    let id = queued_id(
        out[1]["reply"]
            .as_str()
            .unwrap_or_else(|| panic!("{out:?}")),
    );
    app.wait_for_status(&id, DELIVERED, WAIT).await;
}

#[tokio::test]
async fn test_keys_are_sandboxed_over_smtp() {
    let upstream = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&upstream).await;
    let test_key = app.create_key("acme", "send,messages", true).await;
    let out = smtplib_send(
        app.smtp_addr.unwrap(),
        Connect::StartTls,
        Some(&test_key),
        &[Mail {
            from: "a@example.com",
            to: &["b@example.net"],
            data: b"From: a@example.com\r\nSubject: sandboxed\r\n\r\nhello\r\n",
        }],
    )
    .await;
    let id = queued_id(
        out[1]["reply"]
            .as_str()
            .unwrap_or_else(|| panic!("{out:?}")),
    );
    let email = app.wait_for_status(&id, DELIVERED, WAIT).await;
    assert!(email.sandbox);
    assert_eq!(email.recipients[0].relay_host.as_deref(), Some("sandbox"));
    app.drain().await;
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn trusted_network_sends_without_auth_into_its_project() {
    let upstream = TestSmtpServer::start().await;
    let app = TestApp::builder()
        .relaying_to(&upstream)
        .configure(trust_loopback)
        .start()
        .await;
    let (mut c, ehlo) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    // Trusted clients may authenticate without TLS, so AUTH is offered before STARTTLS.
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN") || ehlo.contains("AUTH LOGIN PLAIN"),
        "{ehlo}"
    );
    let reply = c
        .send(
            "cron@internal.example.com",
            &["ops@example.net"],
            b"From: cron@internal.example.com\r\nSubject: nightly\r\n\r\nall good\r\n",
        )
        .await;
    assert!(reply.starts_with("250 2.0.0 queued as "), "{reply}");
    let id = queued_id(&reply);
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 bye");

    let internal = app.create_key("internal", "messages", false).await;
    let email = app.get_email_as(&internal, &id).await;
    assert_eq!(email.subject, "nightly");
    // Another project's key cannot see it.
    assert_eq!(app.get_email_raw(&app.key, &id).await.status(), 404);
    upstream.wait_for(1, WAIT).await;

    // Counted like HTTP mail, for its project.
    let project: (uuid::Uuid,) = sqlx::query_as("SELECT id FROM projects WHERE name = 'internal'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let metrics = app.scrape_metrics().await;
    let counted = metrics.lines().any(|l| {
        l.starts_with("mailgate_messages_accepted_total{")
            && l.contains(&format!("project=\"{}\"", project.0))
            && l.ends_with(" 1")
    });
    assert!(counted, "{metrics}");
}

#[tokio::test]
async fn pipelined_commands_get_their_replies_in_order() {
    let app = TestApp::builder().configure(trust_loopback).start().await;
    let (mut c, ehlo) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    assert!(ehlo.contains("250-PIPELINING"), "{ehlo}");
    c.write(
        b"MAIL FROM:<a@example.com>\r\n\
RCPT TO:<b@example.net>\r\n\
RCPT TO:<not an address>\r\n\
RCPT TO:<B@example.net>\r\n\
RCPT TO:<c@example.net>\r\n\
DATA\r\n",
    )
    .await;
    let mut replies = Vec::new();
    for _ in 0..6 {
        replies.push(c.reply().await);
    }
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(
        codes,
        ["250", "250", "501", "250", "250", "354"],
        "{replies:?}"
    );
    // The message, the terminator and the next commands in one write.
    c.write(b"From: a@example.com\r\nSubject: piped\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n")
        .await;
    let queued = c.reply().await;
    assert!(queued.starts_with("250 2.0.0 queued as "), "{queued}");
    assert_eq!(c.reply().await, "250 2.0.0 OK");
    assert_eq!(c.reply().await, "221 2.0.0 bye");

    let internal = app.create_key("internal", "messages", false).await;
    let email = app.get_email_as(&internal, &queued_id(&queued)).await;
    // B@ and b@ are one mailbox: recorded once.
    assert_eq!(
        email
            .recipient_statuses()
            .into_iter()
            .map(|(e, _)| e)
            .collect::<Vec<_>>(),
        ["b@example.net", "c@example.net"]
    );
}

#[tokio::test]
async fn x_mailgate_track_instruments_the_html_part_of_submitted_mime() {
    let upstream = TestSmtpServer::start().await;
    let app = TestApp::builder()
        .relaying_to(&upstream)
        .configure(|c| {
            trust_loopback(c);
            c.tracking.base_url = Some("https://t.example.test".into());
        })
        .start()
        .await;
    let (mut c, _) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    let message = b"From: shop@internal.example.com\r\n\
To: ada@example.net\r\n\
Subject: order\r\n\
X-Mailgate-Track: opens, clicks\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"B\"\r\n\
\r\n\
--B\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
See https://shop.example/o/1\r\n\
--B\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
<p>See <a href=3D\"https://shop.example/o/1\">it</a></p>\r\n\
--B--\r\n";
    let reply = c
        .send("shop@internal.example.com", &["ada@example.net"], message)
        .await;
    assert!(reply.starts_with("250 2.0.0 queued as "), "{reply}");
    // A typo in the header is refused, not ignored.
    let typo =
        b"From: shop@internal.example.com\r\nSubject: x\r\nX-Mailgate-Track: open\r\n\r\nx\r\n";
    let refused = c
        .send("shop@internal.example.com", &["ada@example.net"], typo)
        .await;
    assert!(refused.starts_with("554"), "{refused}");

    let got = upstream.wait_for(1, WAIT).await;
    let relayed = got[0].text();
    assert!(
        !relayed.contains("X-Mailgate-Track"),
        "the header is ours: {relayed}"
    );
    let parsed = mail_parser::MessageParser::new()
        .parse(relayed.as_bytes())
        .unwrap();
    let html = parsed.body_html(0).unwrap().into_owned();
    assert!(html.contains("https://t.example.test/t/c/"), "{html}");
    assert!(html.contains("https://t.example.test/t/o/"), "{html}");
    assert!(!html.contains("https://shop.example/o/1"), "{html}");
    assert_eq!(
        parsed.body_text(0).unwrap().trim(),
        "See https://shop.example/o/1",
        "the text part is byte for byte the client's"
    );
    assert!(relayed.contains("\r\n--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee https://shop.example/o/1\r\n--B\r\n"));
}

/// `X-Mailgate-Unsubscribe: one-click` asks for the RFC 8058 headers on submitted MIME: the
/// header itself is taken out, the link it adds unsubscribes the one recipient in the
/// submitting project, and a message to several recipients is refused (one copy of the MIME
/// cannot carry a link per recipient).
#[tokio::test]
async fn x_mailgate_unsubscribe_adds_a_one_click_link_for_the_one_recipient() {
    let upstream = TestSmtpServer::start().await;
    let app = TestApp::builder()
        .relaying_to(&upstream)
        .configure(|c| {
            trust_loopback(c);
            c.tracking.base_url = Some("https://t.example.test".into());
        })
        .start()
        .await;
    let (mut c, _) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    let message = b"From: news@internal.example.com\r\n\
To: ada@example.net\r\n\
Subject: news\r\n\
X-Mailgate-Unsubscribe: one-click\r\n\
\r\n\
This week.\r\n";
    let reply = c
        .send("news@internal.example.com", &["ada@example.net"], message)
        .await;
    assert!(reply.starts_with("250 2.0.0 queued as "), "{reply}");
    let refused = c
        .send(
            "news@internal.example.com",
            &["ada@example.net", "bob@example.net"],
            message,
        )
        .await;
    assert!(refused.starts_with("554 5.6.0"), "{refused}");
    assert!(refused.contains("exactly one recipient"), "{refused}");
    let typo = b"From: news@internal.example.com\r\nSubject: x\r\nX-Mailgate-Unsubscribe: yes\r\n\r\nx\r\n";
    let refused = c
        .send("news@internal.example.com", &["ada@example.net"], typo)
        .await;
    assert!(refused.starts_with("554"), "{refused}");

    let got = upstream.wait_for(1, WAIT).await;
    let relayed = got[0].text();
    assert!(!relayed.contains("X-Mailgate-Unsubscribe"), "{relayed}");
    assert!(
        relayed.contains("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
        "{relayed}"
    );
    let link = relayed
        .split("List-Unsubscribe: <https://t.example.test")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .unwrap_or_else(|| panic!("no List-Unsubscribe link: {relayed}"))
        .to_string();
    assert!(link.starts_with("/u/"), "{link}");

    let r = app
        .http
        .post(app.url(&link))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let key = app.create_key("internal", "suppressions", false).await;
    let r = app
        .request_as(
            &key,
            reqwest::Method::GET,
            "/v1/suppressions/ada@example.net",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "suppressed in the submitting project");
    let entry: serde_json::Value = r.json().await.unwrap();
    assert_eq!(entry["reason"], "unsubscribe", "{entry}");
}

/// The CRLF before the final "." ends the last line and belongs to the message (RFC 5321
/// §4.1.1.4): a one-line body submitted with smtplib comes back from GET /source, and reaches
/// the upstream, byte for byte. Mailgate adds only the Message-ID and Date a message lacks.
#[tokio::test]
async fn a_one_line_body_is_stored_and_relayed_byte_for_byte() {
    let upstream = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&upstream).await;
    let complete: &[u8] = b"Date: Thu, 02 Jan 2025 03:04:05 +0000\r\n\
Message-ID: <one-line@example.com>\r\n\
From: a@example.com\r\n\
To: b@example.net\r\n\
Subject: One line\r\n\
\r\n\
Just this line.\r\n";
    let bare: &[u8] = b"From: a@example.com\r\n\
To: b@example.net\r\n\
Subject: One line\r\n\
\r\n\
Just this line.\r\n";
    let mail = |data| Mail {
        from: "a@example.com",
        to: &["b@example.net"],
        data,
    };
    let out = smtplib_send(
        app.smtp_addr.unwrap(),
        Connect::StartTls,
        Some(&app.key),
        &[mail(complete), mail(bare)],
    )
    .await;
    let complete_id = queued_id(
        out[1]["reply"]
            .as_str()
            .unwrap_or_else(|| panic!("{out:?}")),
    );
    let bare_id = queued_id(
        out[2]["reply"]
            .as_str()
            .unwrap_or_else(|| panic!("{out:?}")),
    );

    let stored = source(&app, &app.key, &complete_id).await;
    assert_eq!(
        String::from_utf8_lossy(&stored),
        String::from_utf8_lossy(complete)
    );
    // Only the two lines it lacked go on top of the bare one; every submitted byte follows.
    let email = app.get_email(&bare_id).await;
    let stored_bare = source(&app, &app.key, &bare_id).await;
    let head = format!("Message-ID: {}\r\nDate: ", email.message_id);
    assert!(
        stored_bare.starts_with(head.as_bytes()),
        "{}",
        String::from_utf8_lossy(&stored_bare)
    );
    let date_end = head.len()
        + stored_bare[head.len()..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap()
        + 2;
    assert_eq!(
        String::from_utf8_lossy(&stored_bare[date_end..]),
        String::from_utf8_lossy(bare)
    );

    // The upstream receives those same bytes: no line lost, none added.
    let received = upstream.wait_for(2, WAIT).await;
    let mut got: Vec<&[u8]> = received.iter().map(|m| m.data.as_slice()).collect();
    let mut want = vec![stored.as_slice(), stored_bare.as_slice()];
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// The size limit applies to the message as stored: one that fits `smtp.max_message_bytes`
/// as sent, but not once click tracking has rewritten its links, is refused with 552 (and
/// the same over HTTP with 413); without tracking the same message is accepted.
#[tokio::test]
async fn the_size_limit_applies_after_tracking_rewrites_the_links() {
    const LIMIT: usize = 4000;
    let upstream = TestSmtpServer::start().await;
    let app = TestApp::builder()
        .relaying_to(&upstream)
        .configure(|c| {
            trust_loopback(c);
            c.tracking.base_url = Some("https://t.example.test".into());
            c.smtp.max_message_bytes = Some(LIMIT);
            c.http.max_message_bytes = LIMIT;
        })
        .start()
        .await;
    let links: String = (0..20)
        .map(|i| format!("<p><a href=\"https://shop.example/p/{i}\">item {i}</a></p>\r\n"))
        .collect();
    let message = |track: &str| {
        let head = format!(
            "From: shop@internal.example.com\r\nTo: ada@example.net\r\nSubject: catalogue\r\n\
X-Mailgate-Track: {track}\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{links}--B\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n"
        );
        let tail = "\r\n--B--\r\n";
        // Filled up to 100 bytes under the limit with plain text.
        let filler = "Our catalogue.\r\n".repeat(1000);
        let room = LIMIT - 100 - head.len() - tail.len();
        let text = &filler[..room - room % 16];
        format!("{head}{text}{tail}").into_bytes()
    };
    let tracked = message("clicks, opens");
    assert!(
        tracked.len() < LIMIT && tracked.len() > LIMIT - 120,
        "{}",
        tracked.len()
    );

    let (mut c, _) = RawClient::ehlo(app.smtp_addr.unwrap()).await;
    let reply = c
        .send("shop@internal.example.com", &["ada@example.net"], &tracked)
        .await;
    assert!(reply.starts_with("552 5.3.4 "), "{reply}");
    assert!(
        reply.contains("tracking") && reply.contains(&format!("limit of {LIMIT}")),
        "{reply}"
    );
    let reply = c
        .send(
            "shop@internal.example.com",
            &["ada@example.net"],
            &message("none"),
        )
        .await;
    assert!(reply.starts_with("250 2.0.0 queued as "), "{reply}");
    let id = queued_id(&reply);
    let internal = app.create_key("internal", "messages", false).await;
    assert_eq!(app.get_email_as(&internal, &id).await.subject, "catalogue");

    // Over HTTP the limit has always applied to the rendered, tracked message.
    let html: String = links.replace("\r\n", "\n");
    let text = "Our catalogue.\n".repeat(140);
    let mut body = json!({"from": "shop@example.com", "to": "ada@example.net",
        "subject": "catalogue", "html": html, "text": text});
    let (status, answer) = app
        .call(reqwest::Method::POST, "/v1/emails", Some(body.clone()))
        .await;
    assert_eq!(status, 202, "fits untracked: {answer}");
    let size = app.get_source(answer["id"].as_str().unwrap()).await.len();
    assert!(size > LIMIT - 300, "just under the limit: {size}");
    body["track"] = json!({"opens": true, "clicks": true});
    let (status, problem) = app
        .call(reqwest::Method::POST, "/v1/emails", Some(body))
        .await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(problem["code"], "payload_too_large");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("over the limit of {LIMIT}")),
        "{problem}"
    );
}
