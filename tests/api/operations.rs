//! Operator tools: `mailgate doctor` and `mailgate queue …`.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    app::{TestApp, create_database, relay_to, test_config},
    dns_server::TestDns,
    smtp_server::{SmtpServerOptions, TestSmtpServer},
};

async fn mailgate(db: &str, envs: &[(&str, String)], args: &[&str]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailgate"));
    cmd.args(args)
        .env("MAILGATE_DATABASE_URL", db)
        .env_remove("MAILGATE_RELAY_URL");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn line<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{report}"))
}

#[tokio::test]
async fn doctor_walks_a_good_relay_through_starttls_and_auth() {
    let smtp = TestSmtpServer::start_with(SmtpServerOptions {
        require_tls_and_auth: Some(("mailgate".into(), "s3cret".into())),
        ..Default::default()
    })
    .await;
    let db = create_database().await;
    assert!(mailgate(&db, &[], &["migrate"]).await.0);
    let relay = vec![
        (
            "MAILGATE_RELAYS__DEFAULT__URL",
            format!(
                "smtp://mailgate:s3cret@localhost:{}?tls=required",
                smtp.port()
            ),
        ),
        ("MAILGATE_RELAYS__DEFAULT__TLS_INSECURE", "true".to_string()),
    ];
    let (ok, report) = mailgate(&db, &relay, &["doctor"]).await;
    assert!(ok, "{report}");
    assert!(line(&report, "postgres").starts_with("ok"));
    assert!(
        line(&report, "migrations").contains("none pending"),
        "{report}"
    );
    assert!(line(&report, "relay default · connect").starts_with("ok"));
    assert!(line(&report, "relay default · STARTTLS").contains("encrypted"));
    assert!(line(&report, "relay default · AUTH").contains("accepted"));
    assert!(report.contains("all checks passed"));
    assert!(
        !report.contains("s3cret"),
        "the relay password never appears:\n{report}"
    );

    // The wrong password: the AUTH step says so and doctor fails.
    let wrong = vec![
        (
            "MAILGATE_RELAYS__DEFAULT__URL",
            format!(
                "smtp://mailgate:nope@localhost:{}?tls=required",
                smtp.port()
            ),
        ),
        ("MAILGATE_RELAYS__DEFAULT__TLS_INSECURE", "true".to_string()),
    ];
    let (ok, report) = mailgate(&db, &wrong, &["doctor"]).await;
    assert!(!ok);
    let auth = line(&report, "relay default · AUTH");
    assert!(auth.starts_with("FAIL") && auth.contains("535"), "{report}");
}

#[tokio::test]
async fn doctor_reports_a_dead_relay() {
    let db = create_database().await;
    let (ok, report) = mailgate(&db, &[], &["doctor"]).await;
    assert!(
        !ok && line(&report, "migrations").contains("run `mailgate migrate`"),
        "{report}"
    );
    assert!(mailgate(&db, &[], &["migrate"]).await.0);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (ok, report) = mailgate(
        &db,
        &[("MAILGATE_RELAY_URL", format!("smtp://{closed}?tls=none"))],
        &["doctor"],
    )
    .await;
    assert!(!ok);
    assert!(
        line(&report, "relay default · connect").starts_with("FAIL"),
        "{report}"
    );
    assert!(report.contains("1 check(s) failed"), "{report}");
    // Without a relay, doctor says sandbox and passes.
    let (ok, report) = mailgate(&db, &[], &["doctor"]).await;
    assert!(ok, "{report}");
    assert!(line(&report, "relays").contains("sandbox"));
}

/// With scanning on, a `scan.max_bytes` below what the listeners accept means some mail goes
/// unscanned: doctor says so (a warning, not a failure), naming both limits and the policy.
#[tokio::test]
async fn doctor_warns_when_scan_max_bytes_is_below_the_message_size_limits() {
    let db = "postgres://postgres@127.0.0.1:5432/not-connected-offline";
    let scanning = |max: &str| {
        vec![
            (
                "MAILGATE_SCAN__RSPAMD_URL",
                "http://127.0.0.1:11333".to_string(),
            ),
            ("MAILGATE_SCAN__MAX_BYTES", max.to_string()),
            ("MAILGATE_SMTP__MAX_MESSAGE_BYTES", "20971520".to_string()),
        ]
    };
    for args in [&["doctor", "--offline"][..], &["doctor"]] {
        let (_, report) = mailgate(db, &scanning("1048576"), args).await;
        let warning = line(&report, "scan limits");
        assert!(warning.starts_with("WARN"), "{report}");
        assert!(
            warning.contains(
                "scan.max_bytes (1048576) is below http.max_message_bytes (10485760) and smtp.max_message_bytes (20971520)"
            ) && warning.contains("scan.oversize: fail_open"),
            "{report}"
        );
    }
    let (ok, report) = mailgate(db, &scanning("1048576"), &["doctor", "--offline"]).await;
    assert!(ok, "a warning is not a failure: {report}");
    assert!(
        report.contains("all checks passed (1 warning(s))"),
        "{report}"
    );
    // Large enough for both: nothing to warn about.
    let (ok, report) = mailgate(db, &scanning("20971520"), &["doctor", "--offline"]).await;
    assert!(ok, "{report}");
    assert!(line(&report, "scan limits").starts_with("ok"), "{report}");
    // Scanning off: no such check.
    let (_, report) = mailgate(db, &[], &["doctor", "--offline"]).await;
    assert!(!report.contains("scan limits"), "{report}");
}

#[tokio::test]
async fn queue_retry_sends_deferred_mail_now() {
    let smtp = TestSmtpServer::start().await;
    smtp.rcpt_reply("later@example.com", 451, "4.7.1 greylisted", Some(1));
    let db = create_database().await;
    let mut config = test_config(&db);
    relay_to(&mut config, &smtp);
    config.delivery.retry_base_secs = 600.0;
    config.delivery.retry_max_secs = 600.0;
    let app = TestApp::builder().config(config).start().await;
    let id = app
        .send_ok(&json!({"from": "a@example.com", "to": "later@example.com", "subject": "s", "text": "t"}))
        .await;
    app.wait_for_status(&id, &["deferred"], Duration::from_secs(15))
        .await;

    let (ok, stats) = mailgate(&db, &[], &["queue", "stats"]).await;
    assert!(ok, "{stats}");
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("deferred") && l.trim_end().ends_with(" 1")),
        "{stats}"
    );

    let (ok, out) = mailgate(&db, &[], &["queue", "retry", "--status", "deferred"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("1 recipient(s) due now"), "{out}");
    app.wait_for_status(&id, &["delivered"], Duration::from_secs(15))
        .await;
    assert_eq!(smtp.received().len(), 1);

    let (ok, out) = mailgate(&db, &[], &["queue", "retry", "--status", "sending"]).await;
    assert!(!ok, "{out}");

    // Purge: nothing is old enough yet; with a zero age the delivered message goes.
    let (ok, out) = mailgate(&db, &[], &["queue", "purge", "--older-than", "7d"]).await;
    assert!(ok && out.contains("0 finished"), "{out}");
    let (ok, out) = mailgate(&db, &[], &["queue", "purge", "--older-than", "0s"]).await;
    assert!(ok && out.contains("1 finished"), "{out}");
    let (ok, out) = mailgate(&db, &[], &["queue", "purge", "--older-than", "soon"]).await;
    assert!(!ok, "{out}");
}

/// A direct relay: doctor checks each egress address is one of this host's, and fails on one
/// that is not (every connection from it would fail).
#[tokio::test]
async fn doctor_checks_a_direct_relays_egress_addresses() {
    let db = create_database().await;
    assert!(mailgate(&db, &[], &["migrate"]).await.0);
    let direct = |egress: &str| {
        vec![
            ("MAILGATE_RELAYS__DIRECT__MX", "true".to_string()),
            ("MAILGATE_RELAYS__DIRECT__EGRESS", egress.to_string()),
            (
                "MAILGATE_DNS__NAMESERVERS",
                r#"["127.0.0.1:53"]"#.to_string(),
            ),
        ]
    };
    let (ok, report) = mailgate(
        &db,
        &direct(r#"[{addr="127.26.11.10",helo="mta1.mailgate.test",weight=3}]"#),
        &["doctor"],
    )
    .await;
    assert!(ok, "{report}");
    assert!(
        line(&report, "relay direct · egress 127.26.11.10").contains("EHLO mta1.mailgate.test"),
        "{report}"
    );
    // 192.0.2.0/24 is TEST-NET-1: never an address of this host.
    let (ok, report) = mailgate(
        &db,
        &direct(r#"[{addr="192.0.2.10",helo="mta1.mailgate.test"}]"#),
        &["doctor"],
    )
    .await;
    assert!(!ok, "{report}");
    assert!(
        line(&report, "relay direct · egress 192.0.2.10").contains("not an address of this host"),
        "{report}"
    );
}

/// What receivers look up about each egress address, asked through `[dns]` as delivery asks:
/// a PTR, whose name resolves back to the address and is the EHLO name. Where one falls
/// short, doctor warns (mail still goes) and names the exact records to publish.
#[tokio::test]
async fn doctor_names_the_dns_records_each_egress_address_lacks() {
    let dns = TestDns::start().await;
    // All good: PTR, forward-confirmed, the EHLO name.
    dns.ptr("127.32.0.10", "mta1.egress.test")
        .addr("mta1.egress.test", &["127.32.0.10"]);
    // No PTR at all (nor an A record for the EHLO name).
    // PTR names another host, which resolves elsewhere.
    dns.ptr("127.32.0.12", "other.egress.test")
        .addr("other.egress.test", &["127.32.0.99"])
        .addr("mta3.egress.test", &["127.32.0.12"]);
    // PTR is the EHLO name, but that name has no address.
    dns.ptr("127.32.0.13", "mta4.egress.test");

    let db = create_database().await;
    assert!(mailgate(&db, &[], &["migrate"]).await.0);
    let envs = vec![
        ("MAILGATE_RELAYS__DIRECT__MX", "true".to_string()),
        (
            "MAILGATE_RELAYS__DIRECT__EGRESS",
            r#"[{addr="127.32.0.10",helo="mta1.egress.test"},
                {addr="127.32.0.11",helo="mta2.egress.test"},
                {addr="127.32.0.12",helo="mta3.egress.test"},
                {addr="127.32.0.13",helo="mta4.egress.test"}]"#
                .to_string(),
        ),
        ("MAILGATE_RELAYS__PLAIN__MX", "true".to_string()),
        ("MAILGATE_POOLS__DEFAULT", r#"["direct"]"#.to_string()),
        ("MAILGATE_DNS__NAMESERVERS", format!(r#"["{}"]"#, dns.addr)),
    ];
    let (ok, report) = mailgate(&db, &envs, &["doctor"]).await;
    // Warnings only: the addresses are this host's, so mail would go.
    assert!(ok, "{report}");
    assert!(
        report.contains("all checks passed (3 warning(s))"),
        "{report}"
    );

    let good = line(&report, "egress 127.32.0.10 PTR");
    assert!(good.starts_with("ok"), "{report}");
    assert!(
        good.contains("PTR mta1.egress.test, forward-confirmed"),
        "{good}"
    );

    let missing = line(&report, "egress 127.32.0.11 PTR");
    assert!(missing.starts_with("WARN"), "{report}");
    assert!(
        missing.contains("127.32.0.11 has no PTR record"),
        "{missing}"
    );
    assert!(
        missing.contains(
            "publish `11.0.32.127.in-addr.arpa. PTR mta2.egress.test.` and `mta2.egress.test. A 127.32.0.11`"
        ),
        "{missing}"
    );

    let other = line(&report, "egress 127.32.0.12 PTR");
    assert!(other.starts_with("WARN"), "{report}");
    assert!(
        other.contains("the PTR of 127.32.0.12 is other.egress.test (not forward-confirmed: other.egress.test resolves to 127.32.0.99), but connections from it say EHLO mta3.egress.test"),
        "{other}"
    );
    // mta3 already resolves to the address: only the PTR is to change.
    assert!(
        other.contains("publish `12.0.32.127.in-addr.arpa. PTR mta3.egress.test.` in place of the PTR other.egress.test"),
        "{other}"
    );

    let unconfirmed = line(&report, "egress 127.32.0.13 PTR");
    assert!(unconfirmed.starts_with("WARN"), "{report}");
    assert!(
        unconfirmed.contains("PTR mta4.egress.test is not forward-confirmed: mta4.egress.test resolves to no address, not 127.32.0.13; publish `mta4.egress.test. A 127.32.0.13`"),
        "{unconfirmed}"
    );

    // A relay without egress addresses: nothing to look up, said briefly, not a failure.
    assert!(
        line(&report, "relay plain · PTR").contains("this host's outbound address is unknown"),
        "{report}"
    );
    // Every answer came from the DNS server named in `[dns]`.
    assert_eq!(dns.asked("11.0.32.127.in-addr.arpa"), ["PTR"]);
}
