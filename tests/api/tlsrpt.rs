//! TLS reporting (RFC 8460, issue 27 §3) with real parts: the DNS server, test CA, MTA-STS
//! policy servers and MX stand-ins of `tls_policy.rs`, plus an HTTPS server on
//! 127.37.N.3:443 taking reports by POST and an SMTP server for the reports' `mailto:`.
//! The reports are read back with mail-auth's TLS-RPT parser. Each test owns 127.37.N.x.

use std::{io::Read, time::Duration};

use chrono::Utc;
use mail_auth::report::tlsrpt::{PolicyType, ResultType, TlsReport};
use mail_parser::MimeHeaders;
use mailgate::{config::Config, service::tlsrpt::Reporter};

use crate::{
    support::{
        app::TestApp,
        dns_server::TestDns,
        smtp_server::TestSmtpServer,
        test_ca::{Posted, ReportServer, TestCa},
    },
    tls_policy::{direct, event, msg, policy, publish, trusted_mx},
};

const WAIT: Duration = Duration::from_secs(20);

fn reporting(c: &mut Config, dns: &TestDns, ca: &TestCa) {
    direct(c, dns, ca);
    c.tlsrpt.enabled = true;
    c.tlsrpt.org_name = Some("Mailgate Test Org".into());
    c.tlsrpt.contact = Some("tlsrpt@mailgate.test".into());
    // The report endpoints are on loopback.
    c.tlsrpt.allow_private_targets = true;
    c.tlsrpt.retry_secs = 1.0;
}

/// Starts mailgate on `config`, with its TLS-RPT reporter.
async fn start(config: &Config) -> (TestApp, Reporter) {
    let mut reporter = None;
    let app = TestApp::builder()
        .config(config.clone())
        .adjust(|app| reporter = app.tlsrpt().cloned())
        .start()
        .await;
    (app, reporter.expect("tlsrpt.enabled gives a reporter"))
}

/// `domain` has one MX host, `mx.<domain>` on 127.37.N.1, and asks for reports at `rua`.
fn domain(dns: &TestDns, domain: &str, n: u8, rua: &str) {
    let mx = format!("mx.{domain}");
    dns.mx(domain, &[(10, &mx)])
        .addr(&mx, &[&format!("127.37.{n}.1")])
        .set_txt(
            &format!("_smtp._tls.{domain}"),
            &format!("v=TLSRPTv1; rua={rua}"),
        );
}

/// A report as POSTed: gunzipped and parsed by mail-auth.
fn posted_report(posted: &Posted) -> TlsReport {
    assert_eq!(posted.method, "POST");
    assert_eq!(posted.content_type, "application/tlsrpt+gzip");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&posted.body[..])
        .read_to_end(&mut json)
        .expect("gzip");
    TlsReport::parse_json(&json).unwrap_or_else(|e| {
        panic!("{e:?}: {}", String::from_utf8_lossy(&json));
    })
}

fn report_for<'a>(reports: &'a [TlsReport], domain: &str) -> &'a TlsReport {
    reports
        .iter()
        .find(|r| r.policies.iter().any(|p| p.policy.policy_domain == domain))
        .unwrap_or_else(|| panic!("no report for {domain}: {reports:#?}"))
}

/// A day of direct delivery (a verified session under an `enforce` policy, one refused under
/// `enforce` for want of STARTTLS, one with an untrusted certificate under `testing`), then
/// the day's reports: two POSTed to an HTTPS endpoint and one mailed through mailgate's own
/// queue, each with the right counts and failure types. A second instance sends none again.
#[tokio::test]
async fn a_days_reports_go_by_https_and_by_mail_once() {
    let (dns, ca) = (TestDns::start().await, TestCa::new());
    let https_rua = "https://reports.rua.test/v1/tlsrpt";
    // good.test: enforce, a trusted certificate for its MX.
    domain(&dns, "good.test", 1, https_rua);
    let _good_policy = publish(
        &dns,
        &ca,
        "good.test",
        "127.37.1.2",
        "g1",
        &policy("enforce", &["mx.good.test"]),
    )
    .await;
    let good = trusted_mx(&ca, "127.37.1.1", "mx.good.test").await;
    // strict.test: enforce, but its MX offers no STARTTLS.
    domain(&dns, "strict.test", 2, https_rua);
    let _strict_policy = publish(
        &dns,
        &ca,
        "strict.test",
        "127.37.2.2",
        "s1",
        &policy("enforce", &["mx.strict.test"]),
    )
    .await;
    let strict = trusted_mx(&ca, "127.37.2.1", "mx.strict.test").await;
    strict.set_starttls(false);
    // trial.test: testing, and a self-signed certificate; reports by mail.
    domain(&dns, "trial.test", 3, "mailto:tlsrpt@rua.test");
    let _trial_policy = publish(
        &dns,
        &ca,
        "trial.test",
        "127.37.3.2",
        "t1",
        &policy("testing", &["mx.trial.test"]),
    )
    .await;
    let trial = TestSmtpServer::start_on("127.37.3.1:25".parse().unwrap()).await;
    // Where reports go: an HTTPS endpoint, and rua.test's MX for the mail.
    dns.addr("reports.rua.test", &["127.37.9.3"])
        .mx("rua.test", &[(10, "mx.rua.test")])
        .addr("mx.rua.test", &["127.37.9.1"]);
    let endpoint = ReportServer::start("127.37.9.3", "reports.rua.test", &ca).await;
    let inbox = TestSmtpServer::start_on("127.37.9.1:25".parse().unwrap()).await;

    let config = TestApp::builder()
        .configure(|c| reporting(c, &dns, &ca))
        .build_config()
        .await;
    let (app, reporter) = start(&config).await;
    let id = app.send_ok(&msg("x@good.test")).await;
    event(&app, &id, "delivered").await;
    let id = app.send_ok(&msg("x@strict.test")).await;
    event(&app, &id, "deferred").await;
    // No retry of it: one refused session for the day.
    app.cancel_email(&id).await;
    let id = app.send_ok(&msg("x@trial.test")).await;
    event(&app, &id, "delivered").await;
    assert_eq!(good.received().len(), 1);
    assert_eq!(strict.mail_commands(), 0);
    assert_eq!(trial.received().len(), 1);

    let today = Utc::now().date_naive();
    let attempts = reporter.send_day(today).await.unwrap();
    for domain in ["good.test", "strict.test", "trial.test"] {
        let a = attempts
            .iter()
            .find(|a| a.domain == domain)
            .unwrap_or_else(|| panic!("{domain}: {attempts:#?}"));
        assert_eq!(a.status, "sent", "{a:#?}");
        assert_eq!(a.day, today);
    }

    // By HTTPS: one report per domain.
    let posted = endpoint.posted();
    assert_eq!(posted.len(), 2, "{posted:?}");
    assert!(posted.iter().all(|p| p.path == "/v1/tlsrpt"));
    let reports: Vec<TlsReport> = posted.iter().map(posted_report).collect();
    let good_report = report_for(&reports, "good.test");
    assert_eq!(
        good_report.organization_name.as_deref(),
        Some("Mailgate Test Org")
    );
    assert_eq!(
        good_report.contact_info.as_deref(),
        Some("tlsrpt@mailgate.test")
    );
    let start_of_day = today.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    assert_eq!(
        good_report.date_range.start_datetime.to_timestamp(),
        start_of_day
    );
    assert_eq!(
        good_report.date_range.end_datetime.to_timestamp(),
        start_of_day + 86399
    );
    assert!(!good_report.report_id.is_empty());
    assert_eq!(good_report.policies.len(), 1, "{good_report:#?}");
    let p = &good_report.policies[0];
    assert_eq!(p.policy.policy_type, PolicyType::Sts);
    assert_eq!(p.policy.mx_host, ["mx.good.test"]);
    assert!(
        p.policy
            .policy_string
            .contains(&"mode: enforce".to_string()),
        "{p:#?}"
    );
    assert_eq!(p.summary.total_success, 1, "{p:#?}");
    assert_eq!(p.summary.total_failure, 0);
    assert!(p.failure_details.is_empty());

    let strict_report = report_for(&reports, "strict.test");
    let p = &strict_report.policies[0];
    assert_eq!(p.policy.policy_type, PolicyType::Sts, "{strict_report:#?}");
    assert_eq!(p.summary.total_success, 0, "{p:#?}");
    assert_eq!(p.summary.total_failure, 1);
    let failure = &p.failure_details[0];
    assert_eq!(failure.result_type, ResultType::StartTlsNotSupported);
    assert_eq!(
        failure.receiving_mx_hostname.as_deref(),
        Some("mx.strict.test")
    );
    assert_eq!(
        failure.receiving_ip,
        Some("127.37.2.1".parse().unwrap()),
        "{failure:#?}"
    );
    assert_eq!(failure.failed_session_count, 1);

    // By mail, through mailgate's own queue and direct delivery to rua.test's MX.
    let mail = inbox.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.rcpt_to, ["tlsrpt@rua.test"]);
    assert_eq!(mail.mail_from, "tlsrpt@mailgate.test");
    let parsed = mail_parser::MessageParser::new()
        .parse(&mail.data)
        .expect("the report mail parses");
    let subject = parsed.subject().unwrap_or_default();
    assert!(
        subject.starts_with("Report Domain: trial.test Submitter: mailgate.test Report-ID: <"),
        "{subject}"
    );
    let content_type = parsed.content_type().expect("a content type");
    assert_eq!(content_type.ctype(), "multipart");
    assert_eq!(content_type.subtype(), Some("report"));
    assert_eq!(content_type.attribute("report-type"), Some("tlsrpt"));
    let mailed = TlsReport::parse_rfc5322(&mail.data, 1 << 20).expect("mail-auth reads it");
    assert!(subject.contains(&mailed.report_id), "{subject}");
    let p = &mailed.policies[0];
    assert_eq!(p.policy.policy_domain, "trial.test");
    assert_eq!(p.policy.policy_type, PolicyType::Sts);
    assert!(
        p.policy
            .policy_string
            .contains(&"mode: testing".to_string()),
        "{p:#?}"
    );
    assert_eq!(p.summary.total_success, 0, "{p:#?}");
    assert_eq!(p.summary.total_failure, 1);
    assert_eq!(
        p.failure_details[0].result_type,
        ResultType::CertificateNotTrusted,
        "{p:#?}"
    );
    assert_eq!(
        p.failure_details[0].receiving_mx_hostname.as_deref(),
        Some("mx.trial.test")
    );
    let metrics = app.scrape_metrics().await;
    for transport in ["https", "mailto"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("mailgate_tlsrpt_reports_total")
                    && l.contains(&format!(r#"transport="{transport}""#))
                    && l.contains(r#"result="sent""#)),
            "{transport}: {metrics}"
        );
    }

    // Another instance, asked for the same day, sends nothing again.
    let (_other, other_reporter) = start(&config).await;
    let again = other_reporter.send_day(today).await.unwrap();
    assert!(
        again.iter().all(|a| a.status != "sent"),
        "sent twice: {again:#?}"
    );
    assert_eq!(endpoint.posted().len(), 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(inbox.received().len(), 1);
    let sent: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT policy_domain, status, attempts FROM tlsrpt_reports
         WHERE policy_domain IN ('good.test', 'strict.test', 'trial.test') ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        sent,
        [
            ("good.test".to_string(), "sent".to_string(), 1),
            ("strict.test".into(), "sent".into(), 1),
            ("trial.test".into(), "sent".into(), 1),
        ]
    );
}

/// An endpoint that fails gets the report again once the retry is due; one that keeps
/// failing is given up after `tlsrpt.max_attempts`.
#[tokio::test]
async fn a_failing_endpoint_is_retried_then_given_up() {
    let (dns, ca) = (TestDns::start().await, TestCa::new());
    domain(&dns, "flaky.test", 4, "https://reports.flaky.test/tlsrpt");
    dns.addr("reports.flaky.test", &["127.37.4.3"]);
    let _flaky_mx = trusted_mx(&ca, "127.37.4.1", "mx.flaky.test").await;
    let flaky = ReportServer::start("127.37.4.3", "reports.flaky.test", &ca).await;
    flaky.answer(503);
    domain(&dns, "dead.test", 5, "https://reports.dead.test/tlsrpt");
    dns.addr("reports.dead.test", &["127.37.5.3"]);
    let _dead_mx = trusted_mx(&ca, "127.37.5.1", "mx.dead.test").await;
    let dead = ReportServer::start("127.37.5.3", "reports.dead.test", &ca).await;
    dead.answer(500);
    let config = TestApp::builder()
        .configure(|c| {
            reporting(c, &dns, &ca);
            c.tlsrpt.max_attempts = 2;
        })
        .build_config()
        .await;
    let (app, reporter) = start(&config).await;
    for to in ["x@flaky.test", "x@dead.test"] {
        let id = app.send_ok(&msg(to)).await;
        event(&app, &id, "delivered").await;
    }

    let today = Utc::now().date_naive();
    let first = reporter.send_day(today).await.unwrap();
    assert_eq!(first.len(), 2, "{first:#?}");
    assert!(first.iter().all(|a| a.status == "retry"), "{first:#?}");
    assert_eq!(flaky.posted().len(), 1);
    assert_eq!(dead.posted().len(), 1);
    assert!(
        reporter.send_due().await.unwrap().is_empty(),
        "not retried before it is due"
    );

    flaky.answer(200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = reporter.send_due().await.unwrap();
    let status = |d: &str| second.iter().find(|a| a.domain == d).map(|a| a.status);
    assert_eq!(status("flaky.test"), Some("sent"), "{second:#?}");
    assert_eq!(status("dead.test"), Some("failed"), "{second:#?}");
    let posted = flaky.posted();
    assert_eq!(posted.len(), 2);
    let report = posted_report(&posted[1]);
    let p = &report.policies[0];
    assert_eq!(p.policy.policy_domain, "flaky.test");
    assert_eq!(p.policy.policy_type, PolicyType::NoPolicyFound);
    assert_eq!(p.summary.total_success, 1, "{p:#?}");
    assert_eq!(p.summary.total_failure, 0);
    assert_eq!(dead.posted().len(), 2, "tried max_attempts times");

    let (status, attempts, error): (String, i32, Option<String>) = sqlx::query_as(
        "SELECT status, attempts, last_error FROM tlsrpt_reports WHERE policy_domain = 'dead.test'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), attempts), ("failed", 2));
    assert!(error.unwrap().contains("500"));
    assert!(reporter.send_due().await.unwrap().is_empty());
}
