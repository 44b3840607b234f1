//! DKIM: mail is signed per From domain at relay time, and an independent verifier (dkimpy)
//! accepts the signatures.

use std::time::Duration;

use mailgate::{Application, config::DkimAlgorithm};
use serde_json::json;

use crate::support::{
    app::{TestApp, create_database, test_config},
    dkim::{TestKey, generate, signature_header, tag, verifies},
    smtp_server::TestSmtpServer,
};

const WAIT: Duration = Duration::from_secs(20);

async fn app_signing_with(smtp: &TestSmtpServer, keys: &[&TestKey]) -> TestApp {
    TestApp::builder()
        .relaying_to(smtp)
        .configure(|c| c.dkim = keys.iter().map(|k| k.config.clone()).collect())
        .start()
        .await
}

#[tokio::test]
async fn rsa_signed_mail_verifies_independently_and_tampering_breaks_it() {
    let key = generate("example.com", DkimAlgorithm::RsaSha256);
    let smtp = TestSmtpServer::start().await;
    let app = app_signing_with(&smtp, &[&key]).await;
    let id = app
        .send_ok(&json!({
            "from": "Example App <app@example.com>",
            "to": "ann@example.net",
            "cc": "bob@example.org",
            "reply_to": "help@example.com",
            "subject": "Your receipt",
            "text": "Thanks for your order.\n\nTotal: 10 EUR\n",
            "html": "<p>Thanks for your order.</p>",
        }))
        .await;
    app.wait_for_status(&id, &["delivered"], WAIT).await;

    // One transaction per recipient; each carries its own valid signature.
    let received = smtp.wait_for(2, WAIT).await;
    for m in &received {
        let sig = signature_header(&m.data).expect("a DKIM-Signature header first");
        assert_eq!(tag(&sig, "a").as_deref(), Some("rsa-sha256"));
        assert_eq!(tag(&sig, "d").as_deref(), Some("example.com"));
        assert_eq!(tag(&sig, "s").as_deref(), Some("mg1"));
        assert_eq!(tag(&sig, "c").as_deref(), Some("relaxed/relaxed"));
        let signed = tag(&sig, "h").unwrap().to_ascii_lowercase();
        for h in [
            "from",
            "to",
            "cc",
            "subject",
            "date",
            "message-id",
            "reply-to",
            "mime-version",
            "content-type",
        ] {
            assert!(signed.split(':').any(|s| s == h), "{h} not in h={signed}");
        }
        assert!(verifies(&m.data, &key), "dkimpy rejects:\n{}", m.text());
    }

    // The verifier is not a rubber stamp: a changed body or subject fails.
    let original = received[0].text();
    let body_changed = original.replace("Total: 10 EUR", "Total: 99 EUR");
    assert_ne!(body_changed, original);
    assert!(!verifies(body_changed.as_bytes(), &key));
    let subject_changed = original.replace("Your receipt", "Your refund");
    assert!(!verifies(subject_changed.as_bytes(), &key));

    // `source` keeps returning the bytes as accepted: the signature is made per relay attempt.
    let source = app
        .get_source_raw(&app.key, &id)
        .await
        .bytes()
        .await
        .unwrap();
    assert!(!source.starts_with(b"DKIM-Signature"));
    assert!(received[0].data.ends_with(&source));
}

#[tokio::test]
async fn each_from_domain_gets_its_own_key_and_unknown_domains_go_unsigned() {
    let rsa = generate("example.com", DkimAlgorithm::RsaSha256);
    let ed = generate("example.org", DkimAlgorithm::Ed25519Sha256);
    let smtp = TestSmtpServer::start().await;
    let app = app_signing_with(&smtp, &[&rsa, &ed]).await;
    for from in ["app@example.org", "app@news.example.com", "app@example.net"] {
        let id = app
            .send_ok(
                &json!({"from": from, "to": "ann@example.net", "subject": "Hi", "text": "Hello"}),
            )
            .await;
        app.wait_for_status(&id, &["delivered"], WAIT).await;
    }
    let received = smtp.wait_for(3, WAIT).await;
    let by_from = |domain: &str| {
        received
            .iter()
            .find(|m| m.mail_from.ends_with(domain))
            .unwrap_or_else(|| panic!("no mail from {domain}"))
    };

    let ed_mail = by_from("@example.org");
    let sig = signature_header(&ed_mail.data).expect("signed");
    assert_eq!(tag(&sig, "a").as_deref(), Some("ed25519-sha256"));
    assert_eq!(tag(&sig, "d").as_deref(), Some("example.org"));
    assert!(verifies(&ed_mail.data, &ed), "{}", ed_mail.text());

    // A subdomain without a key of its own is signed with its parent's (aligned for DMARC).
    let sub = by_from("@news.example.com");
    let sig = signature_header(&sub.data).expect("signed");
    assert_eq!(tag(&sig, "d").as_deref(), Some("example.com"));
    assert!(verifies(&sub.data, &rsa), "{}", sub.text());

    let unsigned = by_from("@example.net");
    assert!(signature_header(&unsigned.data).is_none());
    assert!(!unsigned.text().contains("DKIM-Signature"));
}

#[tokio::test]
async fn a_bad_key_file_stops_start_up_with_a_clear_error() {
    let db = create_database().await;
    let mut key = generate("example.com", DkimAlgorithm::RsaSha256);
    let mut config = test_config(&db);

    // An RSA key where Ed25519 was promised.
    key.config.algorithm = DkimAlgorithm::Ed25519Sha256;
    config.dkim = vec![key.config.clone()];
    let err = Application::build(config.clone()).await.err().unwrap();
    let text = format!("{err:#}");
    assert!(text.contains("DKIM key for example.com"), "{text}");
    assert!(text.contains("Ed25519"), "{text}");

    // Not a key at all.
    std::fs::write(&key.config.private_key_file, "hello").unwrap();
    key.config.algorithm = DkimAlgorithm::RsaSha256;
    config.dkim = vec![key.config.clone()];
    let err = Application::build(config.clone()).await.err().unwrap();
    let text = format!("{err:#}");
    assert!(text.contains("no PEM private key"), "{text}");
    assert!(
        text.contains(&key.config.private_key_file.display().to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn doctor_lists_dkim_keys_from_the_toml_file_and_names_a_bad_one() {
    let db = create_database().await;
    let good = generate("example.com", DkimAlgorithm::RsaSha256);
    let bad = generate("example.org", DkimAlgorithm::Ed25519Sha256);
    std::fs::write(&bad.config.private_key_file, "not a key").unwrap();
    let file = good.config.private_key_file.with_file_name("mailgate.toml");
    let toml = [&good, &bad]
        .iter()
        .map(|k| {
            format!(
                "[[dkim]]\ndomain = \"{}\"\nselector = \"mg1\"\nalgorithm = \"{}\"\nprivate_key_file = \"{}\"\n\n",
                k.config.domain,
                k.config.algorithm.as_str(),
                k.config.private_key_file.display()
            )
        })
        .collect::<String>();
    std::fs::write(&file, toml).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .arg("doctor")
        .env("MAILGATE_CONFIG", &file)
        .env("MAILGATE_DATABASE_URL", &db)
        .env_remove("MAILGATE_RELAY_URL")
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    let line = |name: &str| {
        report
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no `{name}` line in:\n{report}"))
            .to_string()
    };
    let ok = line("dkim example.com");
    assert!(ok.starts_with("ok"), "{ok}");
    assert!(
        ok.contains("mg1._domainkey.example.com (rsa-sha256) · key loads"),
        "{ok}"
    );
    let failed = line("dkim example.org");
    assert!(failed.starts_with("FAIL"), "{failed}");
    assert!(failed.contains("no PEM private key"), "{failed}");

    // Without a file, the keys can come from one environment variable in inline-TOML form.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .arg("doctor")
        .env_remove("MAILGATE_CONFIG")
        .env("MAILGATE_DATABASE_URL", &db)
        .env_remove("MAILGATE_RELAY_URL")
        .env(
            "MAILGATE_DKIM",
            format!(
                "[{{domain=\"example.com\",selector=\"mg1\",algorithm=\"rsa-sha256\",private_key_file=\"{}\"}}]",
                good.config.private_key_file.display()
            ),
        )
        .output()
        .await
        .unwrap();
    // (Doctor as a whole fails here: the fresh database has no migrations yet.)
    let report = String::from_utf8_lossy(&out.stdout);
    let from_env = report
        .lines()
        .find(|l| l.contains("dkim example.com"))
        .unwrap_or_else(|| panic!("no dkim line in:\n{report}"));
    assert!(from_env.starts_with("ok"), "{from_env}");
    assert!(
        from_env.contains("mg1._domainkey.example.com (rsa-sha256) · key loads"),
        "{from_env}"
    );
}
