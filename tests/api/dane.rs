//! DANE in direct delivery (RFC 7672, issue 27 §2) with real parts: a DNSSEC-signed zone
//! `dane.test` (ldns-signzone) served by nsd on 127.36.N.53, trusted through
//! `dns.trust_anchors`, publishing MX, A and `_25._tcp` TLSA records for SMTP servers on
//! 127.36.N.1:25 (their default certificate is self-signed, so only DANE can verify it).
//! Each test owns 127.36.N.x.

use crate::{
    support::{
        app::TestApp,
        signed_zone::SignedZone,
        smtp_server::{SmtpServerOptions, TestSmtpServer},
        test_ca::TestCa,
    },
    tls_policy::{event, msg},
};
use mailgate::config::RelayConfig;

/// A `3 1 1` TLSA record's data for this certificate: SHA-256 of its SubjectPublicKeyInfo.
fn spki_sha256(cert: &[u8]) -> String {
    let der = rustls::pki_types::CertificateDer::from(cert.to_vec());
    let parsed = webpki::EndEntityCert::try_from(&der).unwrap();
    let spki = parsed.subject_public_key_info();
    ring::digest::digest(&ring::digest::SHA256, spki.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn app(zone: &SignedZone) -> TestApp {
    let (addr, anchor) = (zone.addr.clone(), zone.trust_anchor.clone());
    TestApp::builder()
        .configure(move |c| {
            c.dns.nameservers = vec![addr];
            c.dns.timeout_ms = 2000;
            c.dns.trust_anchors = Some(anchor);
            c.relays.insert(
                "direct".into(),
                RelayConfig {
                    allow_private_mx: true,
                    ..RelayConfig::direct()
                },
            );
            c.pools.insert("default".into(), vec!["direct".into()]);
        })
        .start()
        .await
}

/// The recipient's deferral, which DANE gives `4.7.10` (the TLS it requires was not had).
async fn deferred(app: &TestApp, id: &str) -> String {
    let (email, deferred) = event(app, id, "deferred").await;
    assert_eq!(
        deferred.enhanced_code.as_deref(),
        Some("4.7.10"),
        "{email:#}"
    );
    assert_eq!(deferred.data["tls"]["policy"], "dane", "{email:#}");
    deferred.detail.clone().unwrap()
}

/// `name` (under dane.test) with an MX host `mx.<name>` on `ip` and a `3 1 1` TLSA record.
fn mx_with_tlsa(name: &str, ip: &str, tlsa_hex: &str) -> String {
    format!(
        "{name} IN MX 10 mx.{name}.dane.test.\nmx.{name} IN A {ip}\n_25._tcp.mx.{name} IN TLSA 3 1 1 {tlsa_hex}\n"
    )
}

/// A TLSA record matching the MX's certificate: TLS is required and the self-signed
/// certificate counts as verified; the attempt says `policy: "dane"` and names the record.
#[tokio::test]
async fn a_matching_tlsa_record_delivers_with_policy_dane() {
    let mx = TestSmtpServer::start_on("127.36.1.1:25".parse().unwrap()).await;
    let hash = spki_sha256(&mx.cert_der());
    let zone = SignedZone::start(
        "127.36.1.53",
        "dane.test",
        &mx_with_tlsa("good", "127.36.1.1", &hash),
        &[],
        &[],
    )
    .await;
    let app = app(&zone).await;

    let id = app.send_ok(&msg("x@good.dane.test")).await;
    let (email, delivered) = event(&app, &id, "delivered").await;
    let tls = &delivered.data["tls"];
    assert_eq!(tls["policy"], "dane", "{email:#}");
    assert_eq!(tls["verified"], true, "{email:#}");
    assert_eq!(tls["policy_id"], format!("3 1 1 {hash}"), "{email:#}");
    assert!(tls["version"].as_str().unwrap().starts_with("TLS"));
    assert_eq!(mx.received().len(), 1);
    let metrics = app.scrape_metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mailgate_tls_sessions_total")
                && l.contains(r#"policy="dane""#)
                && l.contains(r#"result="verified""#)),
        "{metrics}"
    );
}

/// DANE-TA (`2 0 1`): the TLSA record names the CA (not trusted otherwise: no
/// `tls_policy.ca_file`) whose certificate the MX sends in its chain, and the chain verifies
/// to it for the MX name.
#[tokio::test]
async fn a_dane_ta_record_verifies_the_chain_to_its_ca() {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let ca = TestCa::new();
    let mx = TestSmtpServer::start_on_with(
        "127.36.5.1:25".parse().unwrap(),
        SmtpServerOptions {
            tls_config: Some(ca.server_config(&["mx.ta.dane.test"])),
            ..SmtpServerOptions::default()
        },
    )
    .await;
    let ca_der = CertificateDer::from_pem_file(&ca.file).unwrap();
    let hash: String = ring::digest::digest(&ring::digest::SHA256, &ca_der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let zone = SignedZone::start(
        "127.36.5.53",
        "dane.test",
        &format!(
            "ta IN MX 10 mx.ta.dane.test.\nmx.ta IN A 127.36.5.1\n_25._tcp.mx.ta IN TLSA 2 0 1 {hash}\n"
        ),
        &[],
        &[],
    )
    .await;
    let app = app(&zone).await;

    let id = app.send_ok(&msg("x@ta.dane.test")).await;
    let (email, delivered) = event(&app, &id, "delivered").await;
    let tls = &delivered.data["tls"];
    assert_eq!(tls["policy"], "dane", "{email:#}");
    assert_eq!(tls["verified"], true, "{email:#}");
    assert_eq!(tls["policy_id"], format!("2 0 1 {hash}"), "{email:#}");
    assert_eq!(mx.received().len(), 1);
}

/// A TLSA record that matches no certificate the MX presents: deferred (4.7.10) after the
/// handshake, and the server never sees MAIL FROM.
#[tokio::test]
async fn a_tlsa_mismatch_defers_before_mail_from() {
    let mx = TestSmtpServer::start_on("127.36.2.1:25".parse().unwrap()).await;
    let other = "ab".repeat(32);
    let zone = SignedZone::start(
        "127.36.2.53",
        "dane.test",
        &mx_with_tlsa("bad", "127.36.2.1", &other),
        &[],
        &[],
    )
    .await;
    let app = app(&zone).await;

    let id = app.send_ok(&msg("x@bad.dane.test")).await;
    let detail = deferred(&app, &id).await;
    assert!(
        detail.contains("the certificate of mx.bad.dane.test does not match its TLSA records"),
        "{detail}"
    );
    assert!(detail.contains("not sent in clear"), "{detail}");
    assert!(mx.connections() >= 1, "the MX was reached");
    assert_eq!(
        mx.mail_commands(),
        0,
        "no MAIL FROM to a certificate DANE refuses"
    );
    assert!(mx.received().is_empty());
}

/// A TLSA answer whose signature does not verify (bogus, RFC 4035): the host is not used,
/// the attempt is deferred, and the MX is never contacted.
#[tokio::test]
async fn a_bogus_tlsa_signature_defers() {
    let mx = TestSmtpServer::start_on("127.36.3.1:25".parse().unwrap()).await;
    let hash = spki_sha256(&mx.cert_der());
    let zone = SignedZone::start(
        "127.36.3.53",
        "dane.test",
        &mx_with_tlsa("forged", "127.36.3.1", &hash),
        &["_25._tcp.mx.forged.dane.test."],
        &[],
    )
    .await;
    let app = app(&zone).await;

    let id = app.send_ok(&msg("x@forged.dane.test")).await;
    let detail = deferred(&app, &id).await;
    assert!(
        detail.contains("DANE: mx.forged.dane.test not used"),
        "{detail}"
    );
    assert!(detail.contains("DNSSEC"), "{detail}");
    assert_eq!(
        mx.connections(),
        0,
        "a host with bogus TLSA is not contacted"
    );
}

/// An unsigned zone proves nothing: its TLSA records (here, ones no certificate matches)
/// are ignored and the mail goes out with opportunistic TLS.
#[tokio::test]
async fn an_unsigned_zone_falls_back_to_opportunistic_tls() {
    let mx = TestSmtpServer::start_on("127.36.4.1:25".parse().unwrap()).await;
    let other = "ab".repeat(32);
    let zone = SignedZone::start(
        "127.36.4.53",
        "dane.test",
        "",
        &[],
        &[(
            "plain.test",
            &format!(
                "@ IN MX 10 mx.plain.test.\nmx IN A 127.36.4.1\n_25._tcp.mx IN TLSA 3 1 1 {other}\n"
            ),
        )],
    )
    .await;
    let app = app(&zone).await;

    let id = app.send_ok(&msg("x@plain.test")).await;
    let (email, delivered) = event(&app, &id, "delivered").await;
    let tls = &delivered.data["tls"];
    assert_eq!(tls["policy"], "opportunistic", "{email:#}");
    assert_eq!(tls["verified"], false, "{email:#}");
    assert_eq!(mx.received().len(), 1);
}
