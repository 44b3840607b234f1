//! Direct delivery (`relays.NAME.mx = true`, issue 26): mailgate asks a real DNS server on
//! loopback for each domain's MX and delivers to real SMTP servers on port 25 of loopback
//! addresses. Each test owns the addresses 127.26.N.x, so tests run side by side; nothing
//! goes anywhere outside 127.0.0.0/8.

use std::time::Duration;

use mailgate::config::{Config, EgressConfig, RelayConfig};
use serde_json::{Value, json};

use crate::support::{
    api::Email,
    app::TestApp,
    dns_server::TestDns,
    eventually,
    smtp_server::{SmtpServerOptions, TestSmtpServer},
};

const WAIT: Duration = Duration::from_secs(20);

/// A direct relay as the default pool, resolving through `dns`.
fn direct(c: &mut Config, dns: &TestDns, allow_private_mx: bool) {
    c.dns.nameservers = vec![dns.addr.to_string()];
    c.dns.timeout_ms = 1000;
    c.relays.insert(
        "direct".into(),
        RelayConfig {
            allow_private_mx,
            ..RelayConfig::direct()
        },
    );
    c.pools.insert("default".into(), vec!["direct".into()]);
}

async fn app(dns: &TestDns) -> TestApp {
    TestApp::builder()
        .configure(|c| direct(c, dns, true))
        .start()
        .await
}

fn msg(to: Value) -> Value {
    json!({"from": "sender@mailgate.test", "to": to, "subject": "direct", "text": "hello"})
}

/// Waits until no recipient is queued or deferred any more.
async fn settled(app: &TestApp, id: &str) -> Email {
    eventually(format_args!("email {id} settled"), WAIT, async || {
        let email = app.get_email(id).await;
        if email
            .recipients
            .iter()
            .all(|r| ["delivered", "bounced", "failed"].contains(&r.status.as_str()))
        {
            Ok(email)
        } else {
            Err(format!("{email:#}"))
        }
    })
    .await
}

fn recipient<'a>(email: &'a Email, addr: &str) -> &'a crate::support::api::Recipient {
    email.recipients.iter().find(|r| r.email == addr).unwrap()
}

fn detail_of(email: &Email, kind: &str, addr: &str) -> String {
    email
        .events
        .iter()
        .find(|e| e.kind == kind && e.recipient == addr)
        .and_then(|e| e.detail.clone())
        .unwrap_or_else(|| panic!("no {kind} event for {addr}: {email:#}"))
}

/// Three recipients at one domain: one connection, one transaction (pipelined, over
/// STARTTLS), one RCPT each, and each RCPT reply recorded for its own recipient: delivered,
/// bounced (5xx), deferred (4xx) and delivered on its retry. The next message to the domain
/// reuses the connection.
#[tokio::test]
async fn a_messages_recipients_at_one_domain_go_in_one_transaction() {
    let dns = TestDns::start().await;
    dns.mx("one.test", &[(10, "mx.one.test")])
        .addr("mx.one.test", &["127.26.1.1"]);
    let mx = TestSmtpServer::start_on("127.26.1.1:25".parse().unwrap()).await;
    mx.rcpt_reply("b@one.test", 550, "5.1.1 no such user", None);
    mx.rcpt_reply("c@one.test", 451, "4.2.1 mailbox busy", Some(1));
    let app = app(&dns).await;

    let id = app
        .send_ok(&msg(json!(["a@one.test", "b@one.test", "c@one.test"])))
        .await;
    let email = settled(&app, &id).await;
    let got = mx.received();
    assert_eq!(got.len(), 2, "one transaction, then c's retry: {got:?}");
    assert_eq!(got[0].rcpt_to, ["a@one.test"], "b refused, c deferred");
    assert_eq!(got[1].rcpt_to, ["c@one.test"]);
    assert!(got[0].pipelined, "the server offered PIPELINING");
    assert!(got[0].tls, "the server offered STARTTLS");
    assert_eq!(mx.connections(), 1);
    let c = recipient(&email, "c@one.test");
    assert_eq!(c.attempts, 2, "{email:#}");
    let deferred = email.events_of("deferred");
    assert_eq!(deferred.len(), 1, "{email:#}");
    assert_eq!(deferred[0].recipient, "c@one.test");
    assert_eq!(deferred[0].smtp_code, Some(451));
    for addr in ["a@one.test", "c@one.test"] {
        let r = recipient(&email, addr);
        assert_eq!(r.status, "delivered", "{email:#}");
        assert_eq!(r.relay_host.as_deref(), Some("mx.one.test [127.26.1.1]"));
        let event = email
            .events
            .iter()
            .find(|e| e.kind == "delivered" && e.recipient == addr)
            .unwrap();
        let route = &event.data["route"];
        assert_eq!(route["mx"], "mx.one.test", "{event:?}");
        assert_eq!(route["ip"], "127.26.1.1");
        assert_eq!(route["implicit_mx"], false);
        assert!(route["egress"].as_str().unwrap().starts_with("127."));
        assert_eq!(route["tls"]["verified"], false, "a self-signed certificate");
        assert!(route["tls"]["version"].as_str().unwrap().starts_with("TLS"));
        assert!(route["tls"]["cipher"].is_string());
        assert_eq!(route["pipelined"], true);
        let detail = detail_of(&email, "delivered", addr);
        for part in [
            "MX mx.one.test [127.26.1.1]",
            "from 127.",
            "TLS",
            "certificate not verified",
            "pipelined",
        ] {
            assert!(detail.contains(part), "{part} in {detail}");
        }
    }
    let b = recipient(&email, "b@one.test");
    assert_eq!(b.status, "bounced");
    assert_eq!(b.smtp_code, Some(550));
    assert_eq!(b.enhanced_code.as_deref(), Some("5.1.1"));

    // The next message to the same MX goes over the same connection.
    let id = app.send_ok(&msg(json!("d@one.test"))).await;
    settled(&app, &id).await;
    assert_eq!(mx.received().len(), 3);
    assert_eq!(mx.connections(), 1, "the session was pooled and reused");
}

/// The preferred MX does not answer: the next one takes the mail, in the same attempt.
#[tokio::test]
async fn a_dead_first_mx_is_skipped_for_the_second() {
    let dns = TestDns::start().await;
    dns.mx("two.test", &[(10, "mx1.two.test"), (20, "mx2.two.test")])
        .addr("mx1.two.test", &["127.26.2.1"])
        .addr("mx2.two.test", &["127.26.2.2"]);
    // Nothing listens on 127.26.2.1:25.
    let mx2 = TestSmtpServer::start_on("127.26.2.2:25".parse().unwrap()).await;
    let app = app(&dns).await;

    let id = app.send_ok(&msg(json!("x@two.test"))).await;
    let email = settled(&app, &id).await;
    let r = recipient(&email, "x@two.test");
    assert_eq!(r.status, "delivered", "{email:#}");
    assert_eq!(r.attempts, 1);
    assert_eq!(r.relay_host.as_deref(), Some("mx2.two.test [127.26.2.2]"));
    let detail = detail_of(&email, "delivered", "x@two.test");
    assert!(
        detail.contains("after mx1.two.test [127.26.2.1]: connect"),
        "{detail}"
    );
    assert_eq!(mx2.received().len(), 1);

    // The operator's view lists the direct relay, its pool and what it has done.
    let secret: secrecy::SecretString = crate::support::app::JWT_SECRET.to_string().into();
    let token =
        mailgate::service::gate::mint_operator_token(&secret, Duration::from_secs(60)).unwrap();
    let relays: Value = app
        .http
        .get(app.url("/v1/relays"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let direct = &relays["data"][0];
    assert_eq!(direct["name"], "direct", "{relays}");
    assert_eq!(direct["host"], "MX of each domain");
    assert_eq!(direct["pools"], json!(["default"]));
    assert_eq!(direct["health"]["attempts"], 1, "{relays}");
    assert_eq!(direct["health"]["failures"], 0);
    assert!(direct["health"]["last_success_at"].is_string());
}

/// A domain with no MX but an address takes mail there (RFC 5321 §5.1), and a server that
/// does not offer PIPELINING gets one command at a time.
#[tokio::test]
async fn a_domain_without_mx_is_its_own_mx() {
    let dns = TestDns::start().await;
    dns.addr("three.test", &["127.26.3.1"]);
    let mx = TestSmtpServer::start_on("127.26.3.1:25".parse().unwrap()).await;
    mx.set_pipelining(false);
    let app = app(&dns).await;

    let id = app
        .send_ok(&msg(json!(["x@three.test", "y@three.test"])))
        .await;
    let email = settled(&app, &id).await;
    assert_eq!(
        recipient(&email, "x@three.test").status,
        "delivered",
        "{email:#}"
    );
    let detail = detail_of(&email, "delivered", "x@three.test");
    assert!(
        detail.contains("three.test [127.26.3.1] (implicit MX)"),
        "{detail}"
    );
    assert!(!detail.contains("pipelined"), "{detail}");
    let got = mx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, ["x@three.test", "y@three.test"]);
    assert!(!got[0].pipelined, "PIPELINING was not offered");
    assert_eq!(dns.asked("three.test")[0], "MX");
}

/// A null MX (RFC 7505) and a domain that does not exist bounce at once, permanently, and
/// no connection is made anywhere.
#[tokio::test]
async fn null_mx_and_nxdomain_bounce_without_a_connection() {
    let dns = TestDns::start().await;
    dns.mx("nomail.test", &[(0, ".")])
        .addr("nomail.test", &["127.26.4.1"])
        .nxdomain("gone.test");
    let mx = TestSmtpServer::start_on("127.26.4.1:25".parse().unwrap()).await;
    let app = app(&dns).await;

    let id = app
        .send_ok(&msg(json!(["x@nomail.test", "y@gone.test"])))
        .await;
    let email = settled(&app, &id).await;
    let null = recipient(&email, "x@nomail.test");
    assert_eq!(null.status, "bounced", "{email:#}");
    assert_eq!(null.attempts, 1);
    assert_eq!(null.enhanced_code.as_deref(), Some("5.1.10"));
    assert!(detail_of(&email, "bounced", "x@nomail.test").contains("null MX"));
    let gone = recipient(&email, "y@gone.test");
    assert_eq!(gone.status, "bounced", "{email:#}");
    assert_eq!(gone.attempts, 1);
    assert!(
        detail_of(&email, "bounced", "y@gone.test").contains("gone.test does not exist"),
        "{email:#}"
    );
    assert_eq!(mx.connections(), 0, "no connection for a null MX");
}

/// An MX in a private or loopback range is refused (a domain's DNS must not aim mailgate at
/// the inside network) unless `allow_private_mx` is set.
#[tokio::test]
async fn a_private_mx_is_refused_unless_allowed() {
    let dns = TestDns::start().await;
    dns.mx("inside.test", &[(10, "mx.inside.test")])
        .addr("mx.inside.test", &["127.26.5.1"]);
    let mx = TestSmtpServer::start_on("127.26.5.1:25".parse().unwrap()).await;
    let app = TestApp::builder()
        .configure(|c| direct(c, &dns, false))
        .start()
        .await;

    let id = app.send_ok(&msg(json!("x@inside.test"))).await;
    let email = settled(&app, &id).await;
    let r = recipient(&email, "x@inside.test");
    assert_eq!(
        r.status, "failed",
        "mailgate's policy, not a bounce: {email:#}"
    );
    assert_eq!(r.attempts, 1);
    let detail = detail_of(&email, "failed", "x@inside.test");
    assert!(detail.contains("private"), "{detail}");
    assert!(detail.contains("allow_private_mx"), "{detail}");
    assert_eq!(mx.connections(), 0);

    // Allowed, the same MX takes the mail.
    let allowed = TestApp::builder()
        .configure(|c| direct(c, &dns, true))
        .start()
        .await;
    let id = allowed.send_ok(&msg(json!("x@inside.test"))).await;
    let email = settled(&allowed, &id).await;
    assert_eq!(recipient(&email, "x@inside.test").status, "delivered");
    assert_eq!(mx.received().len(), 1);
}

/// SERVFAIL on the MX question defers the recipient; the domain's A record, which points at
/// a listening server, is never asked for nor used.
#[tokio::test]
async fn servfail_defers_without_falling_back_to_the_address() {
    let dns = TestDns::start().await;
    dns.servfail_mx("broken.test")
        .addr("broken.test", &["127.26.6.1"]);
    let mx = TestSmtpServer::start_on("127.26.6.1:25".parse().unwrap()).await;
    let app = app(&dns).await;

    let id = app.send_ok(&msg(json!("x@broken.test"))).await;
    let email = eventually("a deferred attempt", WAIT, async || {
        let email = app.get_email(&id).await;
        if email.events_of("deferred").is_empty() {
            Err(format!("{email:#}"))
        } else {
            Ok(email)
        }
    })
    .await;
    let e = email.events_of("deferred")[0];
    assert!(
        e.detail
            .as_deref()
            .unwrap_or("")
            .contains("DNS lookup of MX broken.test failed"),
        "{email:#}"
    );
    assert_eq!(e.enhanced_code.as_deref(), Some("4.4.3"));
    assert!(
        dns.asked("broken.test").iter().all(|t| *t == "MX"),
        "{:?}",
        dns.asked("broken.test")
    );
    assert_eq!(mx.connections(), 0);
}

/// Two egress addresses by weight: every connection comes from one of them and greets with
/// its name, and the heavier one carries more of the mail.
#[tokio::test]
async fn egress_addresses_are_used_by_weight_with_their_ehlo_names() {
    let dns = TestDns::start().await;
    dns.mx("egress.test", &[(10, "mx.egress.test")])
        .addr("mx.egress.test", &["127.26.7.1"]);
    let mx = TestSmtpServer::start_on("127.26.7.1:25".parse().unwrap()).await;
    let app = TestApp::builder()
        .configure(|c| {
            direct(c, &dns, true);
            c.relays.get_mut("direct").unwrap().egress = vec![
                EgressConfig {
                    addr: "127.26.7.10".parse().unwrap(),
                    helo: "mta1.mailgate.test".into(),
                    weight: 4,
                },
                EgressConfig {
                    addr: "127.26.7.11".parse().unwrap(),
                    helo: "mta2.mailgate.test".into(),
                    weight: 1,
                },
            ];
        })
        .start()
        .await;

    const N: usize = 40;
    for i in 0..N {
        app.send_ok(&msg(json!(format!("r{i}@egress.test")))).await;
    }
    let got = mx.wait_for(N, WAIT).await;
    let mut from = [0usize; 2];
    for m in &got {
        match (m.peer.ip().to_string().as_str(), m.ehlo.as_deref()) {
            ("127.26.7.10", Some("mta1.mailgate.test")) => from[0] += 1,
            ("127.26.7.11", Some("mta2.mailgate.test")) => from[1] += 1,
            other => panic!("a connection from outside the egress addresses: {other:?}"),
        }
    }
    assert!(from[1] > 0, "both addresses are used: {from:?}");
    assert!(from[0] > from[1], "4:1 by weight: {from:?}");
}

/// A message larger than the MX's `SIZE` bounces without being sent (no DATA).
#[tokio::test]
async fn a_message_over_the_mx_size_bounces_without_data() {
    let dns = TestDns::start().await;
    dns.mx("small.test", &[(10, "mx.small.test")])
        .addr("mx.small.test", &["127.26.8.1"]);
    let mx = TestSmtpServer::start_on("127.26.8.1:25".parse().unwrap()).await;
    mx.set_size(100);
    let app = app(&dns).await;

    let id = app.send_ok(&msg(json!("x@small.test"))).await;
    let email = settled(&app, &id).await;
    let r = recipient(&email, "x@small.test");
    assert_eq!(r.status, "bounced", "{email:#}");
    assert_eq!(r.enhanced_code.as_deref(), Some("5.3.4"));
    assert!(detail_of(&email, "bounced", "x@small.test").contains("SIZE 100"));
    assert_eq!(mx.messages_read(), 0, "no DATA was sent");
}

/// `egress` applies to upstream (`url`) relays too: the connection comes from the egress
/// address and greets with its name.
#[tokio::test]
async fn an_upstream_relay_is_reached_from_its_egress_address() {
    let upstream = TestSmtpServer::start_on("127.26.9.1:2525".parse().unwrap()).await;
    let app = TestApp::builder()
        .configure(|c| {
            c.relays.insert(
                "default".into(),
                RelayConfig {
                    egress: vec![EgressConfig {
                        addr: "127.26.9.10".parse().unwrap(),
                        helo: "out.mailgate.test".into(),
                        weight: 1,
                    }],
                    ..RelayConfig::at("smtp://127.26.9.1:2525?tls=none".into())
                },
            );
        })
        .start()
        .await;
    let id = app.send_ok(&msg(json!("x@example.com"))).await;
    app.wait_for_status(&id, &["delivered"], WAIT).await;
    let got = upstream.received();
    assert_eq!(got[0].peer.ip().to_string(), "127.26.9.10");
    assert_eq!(got[0].ehlo.as_deref(), Some("out.mailgate.test"));
}

/// A refusing greeting and a failing STARTTLS each move on to the next MX, within one
/// attempt, and the event names both.
#[tokio::test]
async fn a_refusing_greeting_or_starttls_moves_on_to_the_next_mx() {
    let dns = TestDns::start().await;
    dns.mx(
        "picky.test",
        &[
            (10, "mx1.picky.test"),
            (20, "mx2.picky.test"),
            (30, "mx3.picky.test"),
        ],
    )
    .addr("mx1.picky.test", &["127.26.10.1"])
    .addr("mx2.picky.test", &["127.26.10.2"])
    .addr("mx3.picky.test", &["127.26.10.3"]);
    let mx1 = TestSmtpServer::start_on("127.26.10.1:25".parse().unwrap()).await;
    mx1.set_greeting("554 5.7.1 not from you");
    let mx2 = TestSmtpServer::start_on("127.26.10.2:25".parse().unwrap()).await;
    mx2.set_starttls_reply("454 4.7.0 TLS not available");
    let mx3 = TestSmtpServer::start_on("127.26.10.3:25".parse().unwrap()).await;
    let app = app(&dns).await;

    let id = app.send_ok(&msg(json!("x@picky.test"))).await;
    let email = settled(&app, &id).await;
    let r = recipient(&email, "x@picky.test");
    assert_eq!(r.status, "delivered", "{email:#}");
    assert_eq!(r.attempts, 1);
    assert_eq!(
        r.relay_host.as_deref(),
        Some("mx3.picky.test [127.26.10.3]")
    );
    let detail = detail_of(&email, "delivered", "x@picky.test");
    assert!(
        detail.contains("mx1.picky.test [127.26.10.1]: greeting: 554"),
        "{detail}"
    );
    assert!(
        detail.contains("mx2.picky.test [127.26.10.2]: starttls: 454"),
        "{detail}"
    );
    assert_eq!((mx1.connections(), mx2.connections()), (1, 1));
    assert!(mx1.received().is_empty() && mx2.received().is_empty());
    assert_eq!(mx3.received().len(), 1);
}

/// Every recipient refused in a pipelined transaction: each keeps its own refusal, nothing is
/// sent, and the session stays usable; a 4xx after DATA defers the recipients it was for,
/// and the retry delivers, still on the one connection.
#[tokio::test]
async fn refusals_in_a_pipelined_transaction_leave_the_session_usable() {
    let dns = TestDns::start().await;
    dns.mx("strict.test", &[(10, "mx.strict.test")])
        .addr("mx.strict.test", &["127.26.12.1"]);
    let mx = TestSmtpServer::start_on("127.26.12.1:25".parse().unwrap()).await;
    mx.rcpt_reply("a@strict.test", 550, "5.1.1 no such user", None);
    mx.rcpt_reply("b@strict.test", 552, "5.2.2 mailbox full", None);
    let app = app(&dns).await;

    let id = app
        .send_ok(&msg(json!(["a@strict.test", "b@strict.test"])))
        .await;
    let email = settled(&app, &id).await;
    let a = recipient(&email, "a@strict.test");
    let b = recipient(&email, "b@strict.test");
    assert_eq!((a.status.as_str(), a.smtp_code), ("bounced", Some(550)));
    assert_eq!((b.status.as_str(), b.smtp_code), ("bounced", Some(552)));
    assert_eq!(b.enhanced_code.as_deref(), Some("5.2.2"));
    assert_eq!(mx.messages_read(), 0, "nothing was sent");

    mx.data_reply(452, "4.3.1 out of space, try later", 1);
    let id = app.send_ok(&msg(json!("c@strict.test"))).await;
    let email = settled(&app, &id).await;
    let c = recipient(&email, "c@strict.test");
    assert_eq!(c.status, "delivered", "{email:#}");
    assert_eq!(c.attempts, 2);
    let deferred = email.events_of("deferred");
    assert_eq!(deferred[0].smtp_code, Some(452), "{email:#}");
    assert_eq!(mx.received().len(), 1);
    assert_eq!(mx.connections(), 1, "one session throughout");
}

/// One resolver with a cache: a second message to the same domains asks DNS nothing again,
/// whether the answer was an MX or NXDOMAIN.
#[tokio::test]
async fn dns_answers_are_cached_positive_and_negative() {
    let dns = TestDns::start().await;
    dns.mx("cached.test", &[(10, "mx.cached.test")])
        .addr("mx.cached.test", &["127.26.13.1"])
        .nxdomain("nowhere.test");
    let _mx = TestSmtpServer::start_on("127.26.13.1:25".parse().unwrap()).await;
    // DANE's DNSSEC-validating lookups go through a resolver of their own (tests/api/dane.rs);
    // this test counts the routing resolver's questions.
    let app = TestApp::builder()
        .configure(|c| {
            direct(c, &dns, true);
            c.tls_policy.dane = false;
        })
        .start()
        .await;

    // Other addresses each time: a bounced address is suppressed.
    for i in 0..2 {
        let (x, y) = (format!("x{i}@cached.test"), format!("y{i}@nowhere.test"));
        let id = app.send_ok(&msg(json!([x, y]))).await;
        let email = settled(&app, &id).await;
        assert_eq!(recipient(&email, &x).status, "delivered");
        assert_eq!(recipient(&email, &y).status, "bounced");
    }
    assert_eq!(dns.asked("cached.test"), ["MX"]);
    assert_eq!(dns.asked("nowhere.test"), ["MX"]);
}

/// Internationalized addresses (with issue 26 §3): the domain is looked up and sent in
/// A-labels; a UTF-8 local part goes with SMTPUTF8 to an MX that offers it, in a transaction
/// apart from the ASCII recipients' (which could go without it), and bounces with 5.6.7
/// without DATA at one that does not.
#[tokio::test]
async fn utf8_addresses_go_with_smtputf8_or_bounce_with_5_6_7() {
    let dns = TestDns::start().await;
    dns.mx("xn--bcher-kva.test", &[(10, "mx.xn--bcher-kva.test")])
        .addr("mx.xn--bcher-kva.test", &["127.26.14.1"])
        .mx("plain.test", &[(10, "mx.plain.test")])
        .addr("mx.plain.test", &["127.26.14.2"]);
    let utf8 = TestSmtpServer::start_on_with(
        "127.26.14.1:25".parse().unwrap(),
        SmtpServerOptions {
            smtputf8: true,
            ..SmtpServerOptions::default()
        },
    )
    .await;
    let plain = TestSmtpServer::start_on("127.26.14.2:25".parse().unwrap()).await;
    let app = app(&dns).await;

    let id = app
        .send_ok(&msg(json!([
            "josé@bücher.test",
            "ada@bücher.test",
            "josé@plain.test"
        ])))
        .await;
    let email = settled(&app, &id).await;
    for addr in ["josé@bücher.test", "ada@bücher.test"] {
        assert_eq!(recipient(&email, addr).status, "delivered", "{email:#}");
    }
    let mut got: Vec<_> = utf8
        .received()
        .iter()
        .map(|m| {
            (
                m.rcpt_to.clone(),
                m.mail_params.contains(&"SMTPUTF8".to_string()),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            // The headers name josé: SMTPUTF8 for both, as the MX offers it.
            (vec!["ada@xn--bcher-kva.test".to_string()], true),
            (vec!["josé@xn--bcher-kva.test".to_string()], true),
        ]
    );
    let refused = recipient(&email, "josé@plain.test");
    assert_eq!(refused.status, "bounced", "{email:#}");
    assert_eq!(refused.enhanced_code.as_deref(), Some("5.6.7"));
    assert_eq!(plain.messages_read(), 0);
    assert_eq!(
        dns.asked("bücher.test"),
        Vec::<&str>::new(),
        "asked in A-labels only"
    );
}
