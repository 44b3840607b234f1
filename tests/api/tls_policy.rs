//! Recipient domains' TLS policies in direct delivery (issue 27): MTA-STS (RFC 8461) with
//! real parts. A DNS server on loopback publishes `_mta-sts.<domain>` and the MX records, an
//! HTTPS server on 127.33.N.2:443 serves the policy with a certificate from a CA made for the
//! test (trusted through `tls_policy.ca_file`), and SMTP servers on 127.33.N.1:25 stand for
//! the MX hosts, with a certificate from that CA for their name, a self-signed one, or no
//! STARTTLS at all. Each test owns 127.33.N.x.

use std::time::Duration;

use mailgate::config::{Config, RelayConfig, ShapingConfig, TlsRequirement};
use serde_json::{Value, json};

use crate::support::{
    api::{Email, Event},
    app::TestApp,
    dns_server::TestDns,
    eventually,
    smtp_server::{SmtpServerOptions, TestSmtpServer},
    test_ca::{PolicyServer, TestCa},
};

const WAIT: Duration = Duration::from_secs(20);

pub(crate) fn policy(mode: &str, mx: &[&str]) -> String {
    let mut body = format!("version: STSv1\r\nmode: {mode}\r\n");
    for m in mx {
        body.push_str(&format!("mx: {m}\r\n"));
    }
    body.push_str("max_age: 86400\r\n");
    body
}

/// `domain` publishes MTA-STS `id` and serves `body` from `https://mta-sts.<domain>` on
/// `ip`:443.
pub(crate) async fn publish(
    dns: &TestDns,
    ca: &TestCa,
    domain: &str,
    ip: &str,
    id: &str,
    body: &str,
) -> PolicyServer {
    dns.set_txt(&format!("_mta-sts.{domain}"), &format!("v=STSv1; id={id};"))
        .addr(&format!("mta-sts.{domain}"), &[ip]);
    PolicyServer::start(ip, &format!("mta-sts.{domain}"), ca, body).await
}

/// `domain` with one MX host, `mx.<domain>` on 127.33.N.1, and an MTA-STS policy served from
/// 127.33.N.2.
async fn domain_with_policy(
    dns: &TestDns,
    ca: &TestCa,
    domain: &str,
    n: u8,
    id: &str,
    body: &str,
) -> PolicyServer {
    let mx = format!("mx.{domain}");
    dns.mx(domain, &[(10, &mx)])
        .addr(&mx, &[&format!("127.33.{n}.1")]);
    publish(dns, ca, domain, &format!("127.33.{n}.2"), id, body).await
}

/// Whether `mailgate_tls_sessions_total` has counted sessions with this policy and result.
fn sessions_counted(metrics: &str, policy: &str, result: &str) -> bool {
    metrics.lines().any(|l| {
        l.starts_with("mailgate_tls_sessions_total")
            && l.contains(&format!(r#"policy="{policy}""#))
            && l.contains(&format!(r#"result="{result}""#))
    })
}

/// An MX host on `ip`:25 whose STARTTLS certificate the test CA signed for `name`.
pub(crate) async fn trusted_mx(ca: &TestCa, ip: &str, name: &str) -> TestSmtpServer {
    TestSmtpServer::start_on_with(
        format!("{ip}:25").parse().unwrap(),
        SmtpServerOptions {
            tls_config: Some(ca.server_config(&[name])),
            ..SmtpServerOptions::default()
        },
    )
    .await
}

pub(crate) fn direct(c: &mut Config, dns: &TestDns, ca: &TestCa) {
    c.dns.nameservers = vec![dns.addr.to_string()];
    c.dns.timeout_ms = 1000;
    c.relays.insert(
        "direct".into(),
        RelayConfig {
            allow_private_mx: true,
            ..RelayConfig::direct()
        },
    );
    c.pools.insert("default".into(), vec!["direct".into()]);
    c.tls_policy.ca_file = Some(ca.file.clone());
}

async fn app(dns: &TestDns, ca: &TestCa) -> TestApp {
    TestApp::builder()
        .configure(|c| direct(c, dns, ca))
        .start()
        .await
}

pub(crate) fn msg(to: &str) -> Value {
    json!({"from": "sender@mailgate.test", "to": to, "subject": "tls", "text": "hello"})
}

/// The first event of `kind` for the message, once there is one.
pub(crate) async fn event(app: &TestApp, id: &str, kind: &str) -> (Email, Event) {
    eventually(format_args!("a {kind} event for {id}"), WAIT, async || {
        let email = app.get_email(id).await;
        match email.events.iter().find(|e| e.kind == kind) {
            Some(e) => Ok((email.clone(), e.clone())),
            None => Err(format!("{email:#}")),
        }
    })
    .await
}

/// Under `enforce`, an MX host the policy does not list is never contacted: the recipient
/// is deferred with the reason, though the host would have taken the mail.
#[tokio::test]
async fn enforce_never_uses_an_mx_outside_the_policy() {
    let (dns, ca) = (TestDns::start().await, TestCa::new());
    // The domain's MX is not the one its policy names.
    let enforce = policy("enforce", &["mx.elsewhere.test"]);
    let _policy = domain_with_policy(&dns, &ca, "out.test", 1, "p1", &enforce).await;
    let rogue = trusted_mx(&ca, "127.33.1.1", "mx.out.test").await;
    let app = app(&dns, &ca).await;

    let id = app.send_ok(&msg("x@out.test")).await;
    let (email, deferred) = event(&app, &id, "deferred").await;
    assert_eq!(
        deferred.enhanced_code.as_deref(),
        Some("4.7.10"),
        "{email:#}"
    );
    let detail = deferred.detail.clone().unwrap();
    assert!(detail.contains("MTA-STS policy of out.test"), "{detail}");
    assert!(
        detail.contains("mx.out.test is not an MX host of the MTA-STS policy"),
        "{detail}"
    );
    let tls = &deferred.data["tls"];
    assert_eq!(tls["policy"], "mta-sts", "{deferred:?}");
    assert_eq!(tls["policy_id"], "p1");
    assert_eq!(tls["mode"], "enforce");
    assert_eq!(tls["verified"], false);
    assert_eq!(
        rogue.connections(),
        0,
        "the host outside the policy was never contacted"
    );
    assert!(rogue.received().is_empty());
}

/// Under `enforce`, an MX that does not offer STARTTLS, or whose certificate does not verify
/// for its name, never gets MAIL FROM: the recipient is deferred, nothing is sent in clear.
#[tokio::test]
async fn enforce_never_sends_in_clear_or_to_an_unverified_certificate() {
    let (dns, ca) = (TestDns::start().await, TestCa::new());
    let enforce = policy("enforce", &["mx.plain.test"]);
    let _p1 = domain_with_policy(&dns, &ca, "plain.test", 2, "p1", &enforce).await;
    let plain = trusted_mx(&ca, "127.33.2.1", "mx.plain.test").await;
    plain.set_starttls(false);
    let wildcard = policy("enforce", &["*.selfsigned.test"]);
    let _p2 = domain_with_policy(&dns, &ca, "selfsigned.test", 6, "p2", &wildcard).await;
    // The default test server's certificate is self-signed, for `localhost`.
    let selfsigned = TestSmtpServer::start_on("127.33.6.1:25".parse().unwrap()).await;
    let app = app(&dns, &ca).await;

    let id = app.send_ok(&msg("x@plain.test")).await;
    let (email, deferred) = event(&app, &id, "deferred").await;
    assert_eq!(
        deferred.enhanced_code.as_deref(),
        Some("4.7.10"),
        "{email:#}"
    );
    let detail = deferred.detail.clone().unwrap();
    assert!(
        detail.contains("mx.plain.test did not offer STARTTLS"),
        "{detail}"
    );
    assert!(detail.contains("not sent in clear"), "{detail}");
    assert_eq!(deferred.data["tls"]["policy"], "mta-sts");
    assert!(plain.connections() >= 1, "the MX was reached");
    assert_eq!(plain.mail_commands(), 0, "no MAIL FROM without TLS");

    let id = app.send_ok(&msg("y@selfsigned.test")).await;
    let (email, deferred) = event(&app, &id, "deferred").await;
    assert_eq!(
        deferred.enhanced_code.as_deref(),
        Some("4.7.10"),
        "{email:#}"
    );
    let detail = deferred.detail.clone().unwrap();
    assert!(
        detail.contains("the certificate of mx.selfsigned.test did not verify"),
        "{detail}"
    );
    assert!(selfsigned.connections() >= 1);
    assert_eq!(
        selfsigned.mail_commands(),
        0,
        "no MAIL FROM over unverified TLS"
    );
}

/// Under `enforce`, an MX in the policy with a certificate valid for its name takes the mail;
/// the attempt says which policy applied and that the certificate verified. The policy is
/// fetched once and cached in Postgres.
#[tokio::test]
async fn enforce_with_a_valid_certificate_delivers_verified() {
    let (dns, ca) = (TestDns::start().await, TestCa::new());
    let enforce = policy("enforce", &["mx.ok.test"]);
    let server = domain_with_policy(&dns, &ca, "ok.test", 3, "2026a", &enforce).await;
    let mx = trusted_mx(&ca, "127.33.3.1", "mx.ok.test").await;
    let app = app(&dns, &ca).await;

    let id = app.send_ok(&msg("x@ok.test")).await;
    let (email, delivered) = event(&app, &id, "delivered").await;
    let tls = &delivered.data["tls"];
    assert_eq!(tls["policy"], "mta-sts", "{email:#}");
    assert_eq!(tls["verified"], true);
    assert_eq!(tls["policy_id"], "2026a");
    assert_eq!(tls["mode"], "enforce");
    assert!(tls["version"].as_str().unwrap().starts_with("TLS"), "{tls}");
    assert!(tls["cipher"].is_string());
    assert!(tls.get("failures").is_none(), "{tls}");
    let detail = delivered.detail.clone().unwrap();
    assert!(
        detail.contains("MTA-STS enforce (policy id 2026a)"),
        "{detail}"
    );
    let got = mx.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].tls);

    // Cached: the next message does not fetch again.
    let id = app.send_ok(&msg("y@ok.test")).await;
    event(&app, &id, "delivered").await;
    assert_eq!(server.requests(), 1, "the policy was fetched once");
    let (mode, mx_patterns): (String, Vec<String>) =
        sqlx::query_as("SELECT mode, mx FROM mta_sts_policies WHERE domain = 'ok.test'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(mode, "enforce");
    assert_eq!(mx_patterns, ["mx.ok.test"]);
    let metrics = app.scrape_metrics().await;
    assert!(
        sessions_counted(&metrics, "mta-sts", "verified"),
        "{metrics}"
    );
}

/// Under `testing`, mail goes as without a policy, and the failure is recorded on the
/// attempt; a domain without a policy is opportunistic.
#[tokio::test]
async fn testing_delivers_and_records_the_failure() {
    let (dns, ca) = (TestDns::start().await, TestCa::new());
    let testing = policy("testing", &["mx.try.test"]);
    let _policy = domain_with_policy(&dns, &ca, "try.test", 4, "t1", &testing).await;
    dns.mx("nopolicy.test", &[(10, "mx.try.test")]);
    // A self-signed certificate, for `localhost`.
    let mx = TestSmtpServer::start_on("127.33.4.1:25".parse().unwrap()).await;
    let app = app(&dns, &ca).await;

    let id = app.send_ok(&msg("x@try.test")).await;
    let (email, delivered) = event(&app, &id, "delivered").await;
    let tls = &delivered.data["tls"];
    assert_eq!(tls["policy"], "mta-sts", "{email:#}");
    assert_eq!(tls["mode"], "testing");
    assert_eq!(tls["policy_id"], "t1");
    assert_eq!(tls["verified"], false);
    let failures = tls["failures"].as_array().expect("failures recorded");
    assert!(
        failures[0]
            .as_str()
            .unwrap()
            .contains("the certificate of mx.try.test did not verify"),
        "{tls}"
    );
    let detail = delivered.detail.clone().unwrap();
    assert!(detail.contains("delivered as testing asks"), "{detail}");
    assert_eq!(mx.received().len(), 1);

    let id = app.send_ok(&msg("y@nopolicy.test")).await;
    let (_, delivered) = event(&app, &id, "delivered").await;
    let tls = &delivered.data["tls"];
    assert_eq!(tls["policy"], "opportunistic", "{delivered:?}");
    assert_eq!(tls["policy_id"], Value::Null);
    assert_eq!(tls["verified"], false);
    let metrics = app.scrape_metrics().await;
    for policy in ["mta-sts", "opportunistic"] {
        assert!(
            sessions_counted(&metrics, policy, "unverified"),
            "{policy}: {metrics}"
        );
    }
}

/// The domain publishes a new policy id, but its policy server fails: the cached policy stays
/// in force (RFC 8461 §5.1), the failed refresh is recorded, and it is not retried at once.
#[tokio::test]
async fn a_cached_policy_is_kept_through_a_failed_refresh() {
    let (dns, ca) = (TestDns::start().await, TestCa::new());
    let enforce = policy("enforce", &["mx.keep.test"]);
    let server = domain_with_policy(&dns, &ca, "keep.test", 5, "v1", &enforce).await;
    let mx = trusted_mx(&ca, "127.33.5.1", "mx.keep.test").await;
    let app = app(&dns, &ca).await;

    let id = app.send_ok(&msg("x@keep.test")).await;
    let (_, delivered) = event(&app, &id, "delivered").await;
    assert_eq!(delivered.data["tls"]["policy_id"], "v1");

    dns.set_txt("_mta-sts.keep.test", "v=STSv1; id=v2;");
    server.fail_with(503);
    let id = app.send_ok(&msg("y@keep.test")).await;
    let (email, delivered) = event(&app, &id, "delivered").await;
    let tls = &delivered.data["tls"];
    assert_eq!(tls["policy"], "mta-sts", "{email:#}");
    assert_eq!(tls["policy_id"], "v1", "the cached policy applies");
    assert_eq!(tls["mode"], "enforce");
    assert!(
        tls["policy_fetch_error"].as_str().unwrap().contains("503"),
        "{tls}"
    );
    assert_eq!(server.requests(), 2, "the new id was tried");
    assert_eq!(mx.received().len(), 2);
    let (policy_id, error): (String, Option<String>) = sqlx::query_as(
        "SELECT policy_id, refresh_error FROM mta_sts_policies WHERE domain = 'keep.test'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(policy_id, "v1");
    assert!(error.unwrap().contains("503"));

    // A failed fetch is not repeated at every attempt: the next one uses the cache again.
    let id = app.send_ok(&msg("z@keep.test")).await;
    let (_, delivered) = event(&app, &id, "delivered").await;
    assert_eq!(delivered.data["tls"]["policy_id"], "v1");
    assert_eq!(
        server.requests(),
        2,
        "not fetched again right after a failure"
    );
}

/// `[shaping.NAME] tls = "required"`: for the sites an entry claims, mail goes only over
/// STARTTLS with a certificate valid for the MX name, though the domains publish no policy.
/// An MX without STARTTLS never gets MAIL FROM (deferred, 4.7.10), and the operator's
/// destinations list shows the site's policy and its last TLS failure; an MX with a good
/// certificate takes the mail with `policy: "required"`.
#[tokio::test]
async fn a_shaping_entry_that_requires_tls_never_sends_in_clear() {
    let (dns, ca) = (TestDns::start().await, TestCa::new());
    dns.mx("req.test", &[(10, "mx.req.test")])
        .addr("mx.req.test", &["127.33.7.1"]);
    dns.mx("reqok.test", &[(10, "mx.reqok.test")])
        .addr("mx.reqok.test", &["127.33.7.3"]);
    let plain = trusted_mx(&ca, "127.33.7.1", "mx.req.test").await;
    plain.set_starttls(false);
    let good = trusted_mx(&ca, "127.33.7.3", "mx.reqok.test").await;
    let app = TestApp::builder()
        .configure(|c| {
            direct(c, &dns, &ca);
            for (name, suffix) in [("strict", ".req.test"), ("strictok", ".reqok.test")] {
                c.shaping.insert(
                    name.into(),
                    ShapingConfig {
                        mx_suffix: vec![suffix.into()],
                        tls: Some(TlsRequirement::Required),
                        ..Default::default()
                    },
                );
            }
        })
        .start()
        .await;

    let id = app.send_ok(&msg("x@req.test")).await;
    let (email, deferred) = event(&app, &id, "deferred").await;
    assert_eq!(
        deferred.enhanced_code.as_deref(),
        Some("4.7.10"),
        "{email:#}"
    );
    let detail = deferred.detail.clone().unwrap();
    assert!(
        detail.contains("shaping entry strict requires TLS"),
        "{detail}"
    );
    assert!(
        detail.contains("mx.req.test did not offer STARTTLS"),
        "{detail}"
    );
    assert_eq!(deferred.data["tls"]["policy"], "required", "{deferred:?}");
    assert!(plain.connections() >= 1, "the MX was reached");
    assert_eq!(plain.mail_commands(), 0, "no MAIL FROM without TLS");

    let site = crate::shaping::site_when(
        &app,
        "the strict site with its TLS",
        |d| d["shaping"] == "strict",
        |d| d["tls"]["last_failure"].is_string(),
    )
    .await;
    assert_eq!(site["limits"]["tls"], "required", "{site}");
    assert_eq!(site["tls"]["policy"], "required", "{site}");
    let failure = site["tls"]["last_failure"].as_str().unwrap();
    assert!(failure.contains("did not offer STARTTLS"), "{site}");

    let id = app.send_ok(&msg("y@reqok.test")).await;
    let (email, delivered) = event(&app, &id, "delivered").await;
    assert_eq!(delivered.data["tls"]["policy"], "required", "{email:#}");
    assert_eq!(delivered.data["tls"]["verified"], true);
    assert_eq!(good.received().len(), 1);
    assert!(good.received()[0].tls);
}
