//! Asynchronous bounces: Postfix accepts the mail (so mailgate records `delivered`), then the
//! destination refuses the recipient and Postfix itself mails an RFC 3464 DSN to the VERP
//! return path, through mailgate's inbound listener.

use serde_json::json;

use super::{BOUNCES, WAIT, hand_in, inbound_app, inbound_log};
use crate::support::{
    eventually, free_port, postfix::Postfix, smtp_server::TestSmtpServer,
    webhook_receiver::WebhookReceiver, within,
};
use mailgate::config::RelayConfig;

/// The email once the upstream's `250` is recorded (its `delivered` event). Its status may
/// be `bounced` already: Postfix's DSN can come back before a poll of the status sees
/// `delivered` (CI saw it 53 ms after).
async fn relayed(app: &crate::support::app::TestApp, id: &str) -> crate::support::api::Email {
    eventually(format_args!("email {id} relayed"), WAIT, async || {
        let email = app.get_email(id).await;
        if email.events_of("delivered").len() == 1 {
            Ok(email)
        } else {
            Err(format!("{email:#}"))
        }
    })
    .await
}

/// The email once its recipient is `bounced`; panics with the inbound and Postfix logs when
/// no bounce came back within `WAIT`.
async fn bounced(
    app: &crate::support::app::TestApp,
    id: &str,
    postfix: &Postfix,
) -> crate::support::api::Email {
    match within(WAIT, async || {
        let email = app.get_email(id).await;
        if email.status == "bounced" {
            Ok(email)
        } else {
            Err(format!("{email:#}"))
        }
    })
    .await
    {
        Ok(email) => email,
        Err(last) => panic!(
            "no bounce came back: {}\ninbound log: {:#?}\npostfix log:\n{}",
            last.unwrap_or_default(),
            inbound_log(app).await,
            postfix.log()
        ),
    }
}

#[tokio::test]
async fn a_bounce_from_postfix_turns_a_delivered_recipient_bounced() {
    // The final destination: takes the connection, refuses one mailbox.
    let destination = TestSmtpServer::start().await;
    destination.rcpt_reply(
        "dead@example.org",
        550,
        "5.1.1 <dead@example.org>: Recipient address rejected: User unknown",
        None,
    );
    let postfix_port = free_port();
    let app = inbound_app()
        .configure(|c| {
            c.relays.insert(
                "default".into(),
                RelayConfig {
                    url: Some(format!("smtp://127.0.0.1:{postfix_port}?tls=none").into()),
                    pool_size: Some(2),
                    tls_insecure: false,
                    max_rate_per_sec: None,
                    burst: None,
                    max_connections: None,
                    mx: false,
                    egress: Vec::new(),
                    allow_private_mx: false,
                },
            );
        })
        .start()
        .await;
    let inbound = app.inbound_addr.expect("inbound listener on");
    // mailgate's upstream; its bounces for the bounce domain go to the inbound listener.
    let postfix = Postfix::start(
        "mta.example.net",
        postfix_port,
        destination.addr,
        &[(BOUNCES, inbound)],
    );
    let receiver = WebhookReceiver::start().await;
    let (_, secret) = app
        .create_webhook(
            &json!({"url": receiver.url("/hook"), "events": ["email.bounced", "email.delivered"]}),
        )
        .await;

    let id = app
        .send_ok(&json!({
            "from": "Billing <billing@example.com>", "to": "dead@example.org",
            "subject": "Your receipt", "text": "Thanks."
        }))
        .await;
    // Postfix said 250: delivered, as far as the upstream's answer goes.
    relayed(&app, &id).await;

    let email = bounced(&app, &id, &postfix).await;
    assert_eq!(
        email.recipient_statuses(),
        [("dead@example.org".to_string(), "bounced".to_string())]
    );
    let bounced = email.events_of("bounced");
    assert_eq!(bounced.len(), 1, "{email:#}");
    let event = bounced[0];
    assert_eq!(event.data["async"], true, "{event:#}");
    assert_eq!(event.data["dsn"]["status"], "5.1.1");
    assert_eq!(event.data["dsn"]["action"], "failed");
    assert_eq!(event.data["dsn"]["reporting_mta"], "mta.example.net");
    assert!(
        event
            .smtp_response
            .as_deref()
            .unwrap()
            .contains("550 5.1.1 <dead@example.org>: Recipient address rejected: User unknown"),
        "Postfix's diagnostic is kept: {event:#}"
    );
    assert_eq!(event.smtp_code, Some(550));
    assert_eq!(event.enhanced_code.as_deref(), Some("5.1.1"));
    // It was delivered first, then bounced.
    let kinds: Vec<&str> = email.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["queued", "delivered", "bounced"]);

    // The address is suppressed, so the next send to it is not relayed.
    let suppression = app.get_suppression("dead@example.org").await;
    assert_eq!(suppression["reason"], "bounce");

    // The app hears it, signed.
    let got = receiver
        .wait_until(WAIT, |got| {
            got.iter().any(|r| r.event_type() == "email.bounced")
        })
        .await;
    let hook = got
        .iter()
        .find(|r| r.event_type() == "email.bounced")
        .unwrap();
    hook.verify(&secret).expect("a Standard Webhooks signature");
    let data = &hook.json()["data"];
    assert_eq!(data["email_id"], id.as_str());
    assert_eq!(data["recipient"], "dead@example.org");
    assert_eq!(data["async"], true);
    assert_eq!(data["dsn"]["status"], "5.1.1");
    assert!(
        data["dsn"]["diagnostic_code"]
            .as_str()
            .unwrap()
            .contains("User unknown")
    );

    // Postfix relayed it with a VERP return path; the headers kept the app's From.
    let relayed = destination.received();
    assert!(relayed.is_empty(), "the destination refused it");
    let log = inbound_log(&app).await;
    assert_eq!(log[0]["kind"], "bounce", "{log:#?}");
    assert_eq!(log[0]["email_id"], id.as_str());
    assert_eq!(
        log[0]["mail_from"], "",
        "a DSN comes from the null return path"
    );
    let rcpt = log[0]["rcpt_to"][0].as_str().unwrap();
    assert!(
        rcpt.starts_with("b-") && rcpt.ends_with(&format!("@{BOUNCES}")),
        "{rcpt}"
    );
}

#[tokio::test]
async fn the_return_path_names_the_recipient_and_keeps_the_from_header() {
    let smtp = TestSmtpServer::start().await;
    let app = inbound_app().relaying_to(&smtp).start().await;
    let id = app
        .send_ok(&json!({
            "from": "Billing <billing@example.com>", "to": ["a@example.org", "b@example.org"],
            "subject": "Hi", "text": "Hi"
        }))
        .await;
    app.drain().await;
    app.wait_for_status(&id, &["delivered"], WAIT).await;
    let got = smtp.received();
    assert_eq!(got.len(), 2);
    let mut senders: Vec<&str> = got.iter().map(|m| m.mail_from.as_str()).collect();
    senders.sort();
    senders.dedup();
    assert_eq!(
        senders.len(),
        2,
        "one return path per recipient: {senders:?}"
    );
    for m in &got {
        assert!(
            m.mail_from.starts_with("b-") && m.mail_from.ends_with(&format!("@{BOUNCES}")),
            "{}",
            m.mail_from
        );
        assert!(m.text().contains("From: Billing <billing@example.com>"));
    }
    // Without a bounce domain, the sender's own address stays the return path.
    let smtp2 = TestSmtpServer::start().await;
    let plain = inbound_app()
        .configure(|c| {
            c.bounce.domain = None;
            crate::support::app::relay_to(c, &smtp2);
        })
        .start()
        .await;
    plain
        .send_ok(&json!({"from": "billing@example.com", "to": "a@example.org", "subject": "Hi", "text": "Hi"}))
        .await;
    plain.drain().await;
    assert_eq!(smtp2.received()[0].mail_from, "billing@example.com");
}

#[tokio::test]
async fn the_inbound_listener_is_never_a_relay() {
    let app = inbound_app().start().await;
    let inbound = app.inbound_addr.unwrap();
    let raw = b"From: a@example.net\r\nTo: b@example.org\r\nSubject: relay?\r\n\r\nHi\r\n";
    let err = hand_in(inbound, Some("a@example.net"), "b@example.org", raw)
        .await
        .expect_err("a foreign domain is refused");
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("relay denied"), "{err}");
    // Nothing was stored.
    assert!(inbound_log(&app).await.is_empty());
}

/// Issue 25: any `b-…` address at the bounce domain was accepted and stored, to be found
/// forged later. A return path mailgate did not give out is now refused at RCPT (550), so
/// nothing is stored; `postmaster` and the configured mailboxes still take mail.
#[tokio::test]
async fn a_bad_or_unknown_return_path_is_refused_at_rcpt_and_never_stored() {
    let smtp = TestSmtpServer::start().await;
    let app = inbound_app().relaying_to(&smtp).start().await;
    let inbound = app.inbound_addr.unwrap();
    app.send_ok(
        &json!({"from": "news@example.com", "to": "ada@example.org", "subject": "s", "text": "t"}),
    )
    .await;
    app.drain().await;
    let return_path = smtp.received()[0].mail_from.clone();
    let (local, _) = return_path.split_once('@').unwrap();
    let (_, rest) = local.split_once('-').unwrap();
    let (id, mac) = rest.split_once('-').unwrap();
    let id: i64 = id.parse().unwrap();
    // A token this server's key signs, for a recipient job that does not exist (as after
    // retention deleted it).
    let key: Vec<u8> = sqlx::query_scalar("SELECT key FROM server_keys WHERE name = 'tokens'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let unknown = mailgate::tokens::TokenKey::new(&key).verp_local(id + 1000);

    // Another project with its own bounce domain: this project's token is not good there.
    app.create_key("other", "send", false).await;
    let (status, body) = app
        .call_as(
            &super::operator_token(),
            reqwest::Method::PATCH,
            "/v1/projects/other",
            Some(json!({"bounce_domain": "bounces.other.test"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let dsn =
        b"From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered\r\n\r\nNo such user.\r\n";
    for refused in [
        format!("b-1-0123456789abcdef@{BOUNCES}"),
        format!("b-{}-{mac}@{BOUNCES}", id + 1),
        format!("{unknown}@{BOUNCES}"),
        format!("{local}@bounces.other.test"),
        format!("anything@{BOUNCES}"),
    ] {
        let err = hand_in(inbound, None, &refused, dsn)
            .await
            .expect_err(&refused);
        assert!(err.is_permanent(), "{refused}: {err}");
        assert!(
            err.to_string().contains("no such return path"),
            "{refused}: {err}"
        );
    }
    assert!(
        inbound_log(&app).await.is_empty(),
        "nothing refused was stored"
    );

    // The real return path, postmaster and the feedback-loop mailbox take mail.
    for accepted in [
        return_path.clone(),
        format!("postmaster@{BOUNCES}"),
        format!("fbl@{BOUNCES}"),
    ] {
        hand_in(inbound, None, &accepted, dsn)
            .await
            .unwrap_or_else(|e| panic!("{accepted}: {e}"));
    }
    assert_eq!(inbound_log(&app).await.len(), 3);
}

/// A refused recipient costs its client a unit of `inbound.per_ip_per_minute`, like a
/// message: once they are used up, the session is closed with 421 and the next MAIL waits.
#[tokio::test]
async fn refused_recipients_count_against_the_client() {
    let app = inbound_app()
        .configure(|c| c.inbound.per_ip_per_minute = 4)
        .start()
        .await;
    let (mut client, greeting) = Line::connect(app.inbound_addr.unwrap()).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(client.cmd("EHLO mx.example.net").await.starts_with("250"));
    // One unit for the message.
    assert!(client.cmd("MAIL FROM:<>").await.starts_with("250"));
    // Three for three refused recipients: a made-up token, a foreign domain, junk.
    for rcpt in [
        format!("b-1-0123456789abcdef@{BOUNCES}"),
        "someone@example.org".to_string(),
        format!("junk@{BOUNCES}"),
    ] {
        let reply = client.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert!(reply.starts_with("550 "), "{rcpt}: {reply}");
    }
    // The fifth unit is not there: the session ends.
    let reply = client
        .cmd(&format!("RCPT TO:<b-2-0123456789abcdef@{BOUNCES}>"))
        .await;
    assert!(reply.starts_with("421 4.7.1"), "{reply}");
    assert!(client.closed().await, "the connection is closed");
    // A new session from the same address is told to wait at MAIL.
    let (mut client, _) = Line::connect(app.inbound_addr.unwrap()).await;
    assert!(client.cmd("EHLO mx.example.net").await.starts_with("250"));
    let reply = client.cmd("MAIL FROM:<>").await;
    assert!(reply.starts_with("451 4.7.1"), "{reply}");
    assert!(inbound_log(&app).await.is_empty());
}

/// Plain SMTP over TCP, one command and its whole reply at a time.
struct Line {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
}

impl Line {
    async fn connect(addr: std::net::SocketAddr) -> (Self, String) {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut me = Line {
            stream: tokio::io::BufReader::new(tcp),
        };
        let greeting = me.reply().await;
        (me, greeting)
    }

    async fn cmd(&mut self, line: &str) -> String {
        use tokio::io::AsyncWriteExt;
        self.stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    /// Every line of one reply, joined with `\n`; empty once the server hung up.
    async fn reply(&mut self) -> String {
        use tokio::io::AsyncBufReadExt;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.stream.read_line(&mut line))
                .await
                .expect("a reply in time")
                .unwrap_or(0);
            if n == 0 {
                return lines.join("\n");
            }
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line.trim_end().to_string());
            if last {
                return lines.join("\n");
            }
        }
    }

    async fn closed(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(WAIT, self.stream.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    }
}

/// Issue 28: a sending domain's own return path. Its MX record (at `bounces.<domain>`,
/// pointing at the inbound listener's name) is asked for with an SPF record beside it; until
/// it is published mail keeps the server's bounce domain, after it mail from the domain goes
/// out with `b-<token>@bounces.<domain>` (SPF then aligns with the From domain), and a real
/// Postfix's DSN to that address comes back through the inbound listener and bounces the
/// recipient.
#[tokio::test]
async fn a_bounce_comes_back_to_the_sending_domains_own_return_path() {
    use crate::support::dns_server::TestDns;
    use reqwest::Method;

    const RETURN_PATH: &str = "bounces.shop.test";
    let dns = TestDns::start().await;
    let destination = TestSmtpServer::start().await;
    destination.rcpt_reply(
        "dead@example.org",
        550,
        "5.1.1 <dead@example.org>: Recipient address rejected: User unknown",
        None,
    );
    let postfix_port = free_port();
    let dns_addr = dns.addr;
    let app = inbound_app()
        .configure(move |c| {
            crate::support::app::relay_to_url(
                c,
                &format!("smtp://127.0.0.1:{postfix_port}?tls=none"),
            );
            c.dns.nameservers = vec![dns_addr.to_string()];
            c.dns.timeout_ms = 1000;
            c.inbound.hostname = Some("mx.mailgate.test".into());
            c.domains.spf_include = Some("_spf.relay.test".into());
        })
        .start()
        .await;
    let inbound = app.inbound_addr.expect("inbound listener on");
    let postfix = Postfix::start(
        "mta.example.net",
        postfix_port,
        destination.addr,
        &[(BOUNCES, inbound), (RETURN_PATH, inbound)],
    );

    let (status, domain) = app
        .call(
            Method::POST,
            "/v1/domains",
            Some(json!({"name": "shop.test"})),
        )
        .await;
    assert_eq!(status, 201, "{domain:#}");
    assert_eq!(domain["return_path"], RETURN_PATH);
    let records = domain["records"].as_array().unwrap();
    let find = |record: &str, name: &str| {
        records
            .iter()
            .find(|r| r["record"] == record && r["name"] == name)
            .unwrap_or_else(|| panic!("no {record} at {name}: {domain:#}"))
            .clone()
    };
    let mx = find("RETURN_PATH", RETURN_PATH);
    assert_eq!(mx["type"], "MX");
    assert_eq!(mx["value"], "mx.mailgate.test");
    assert_eq!(mx["priority"], 10);
    let rp_spf = find("SPF", RETURN_PATH);
    assert_eq!(rp_spf["value"], "v=spf1 include:_spf.relay.test ~all");
    let dkim = records
        .iter()
        .find(|r| r["record"] == "DKIM")
        .unwrap()
        .clone();
    for r in [find("SPF", "shop.test"), dkim] {
        dns.txt(r["name"].as_str().unwrap(), r["value"].as_str().unwrap());
    }
    let id = domain["id"].as_str().unwrap().to_string();
    let verify = async || {
        let (status, body) = app
            .call(Method::POST, &format!("/v1/domains/{id}/verify"), None)
            .await;
        assert_eq!(status, 200, "{body:#}");
        body
    };
    let checked = verify().await;
    assert_eq!(checked["status"], "verified", "{checked:#}");

    let send = async |to: &str| {
        let id = app
            .send_ok(&json!({"from": "Shop <app@shop.test>", "to": to, "subject": "Receipt", "text": "Thanks."}))
            .await;
        relayed(&app, &id).await;
        id
    };
    let mail_from_of = async |n: usize| {
        within(WAIT, async || {
            let got = destination.received();
            if got.len() >= n {
                Ok(got[n - 1].mail_from.clone())
            } else {
                Err(format!("{} received", got.len()))
            }
        })
        .await
    };
    // Not published yet: the server's bounce domain.
    send("ok@example.org").await;
    let before = mail_from_of(1).await.expect("relayed");
    assert!(before.ends_with(&format!("@{BOUNCES}")), "{before}");

    dns.mx(RETURN_PATH, &[(10, "mx.mailgate.test")]);
    dns.txt(RETURN_PATH, rp_spf["value"].as_str().unwrap());
    let checked = verify().await;
    let status_of = |d: &serde_json::Value, record: &str| {
        d["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["record"] == record && r["name"] == RETURN_PATH)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(
        status_of(&checked, "RETURN_PATH"),
        "verified",
        "{checked:#}"
    );
    assert_eq!(status_of(&checked, "SPF"), "verified", "{checked:#}");

    send("ok2@example.org").await;
    let after = mail_from_of(2).await.expect("relayed");
    assert!(
        after.starts_with("b-") && after.ends_with(&format!("@{RETURN_PATH}")),
        "{after}"
    );

    // Postfix's DSN for a refused recipient comes back to the domain's return path.
    let dead = send("dead@example.org").await;
    let email = bounced(&app, &dead, &postfix).await;
    assert_eq!(email.events_of("bounced")[0].data["dsn"]["status"], "5.1.1");
    let log = inbound_log(&app).await;
    let rcpt = log[0]["rcpt_to"][0].as_str().unwrap();
    assert!(rcpt.ends_with(&format!("@{RETURN_PATH}")), "{log:#?}");
    assert_eq!(log[0]["kind"], "bounce");

    // Only return paths mailgate gave out are taken there; other domains are not ours.
    let dsn =
        b"From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered\r\n\r\nNo such user.\r\n";
    let err = hand_in(inbound, None, &format!("anything@{RETURN_PATH}"), dsn)
        .await
        .expect_err("made up");
    assert!(err.to_string().contains("no such return path"), "{err}");
    let (local, _) = after.split_once('@').unwrap();
    let err = hand_in(
        inbound,
        None,
        &format!("{local}@bounces.elsewhere.test"),
        dsn,
    )
    .await
    .expect_err("not a domain of mailgate's");
    assert!(err.to_string().contains("relay denied"), "{err}");
}
