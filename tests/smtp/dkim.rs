//! Mail submitted over SMTP is DKIM-signed at relay like HTTP mail, for its From header's domain.

use std::time::Duration;

use mailgate::config::DkimAlgorithm;

use crate::{
    client::{Connect, Mail, queued_id, smtplib_send},
    support::{
        app::TestApp,
        dkim::{generate, signature_header, tag, verifies},
        smtp_server::TestSmtpServer,
    },
};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn smtp_mail_is_signed_for_the_from_header_domain_not_the_envelope() {
    let key = generate("example.com", DkimAlgorithm::Ed25519Sha256);
    let upstream = TestSmtpServer::start().await;
    let app = TestApp::builder()
        .relaying_to(&upstream)
        .configure(|c| c.dkim = vec![key.config.clone()])
        .start()
        .await;
    let message: &[u8] = b"Date: Thu, 02 Jan 2025 03:04:05 +0000\r\n\
Message-ID: <signed-1@example.com>\r\n\
From: Shop <shop@example.com>\r\n\
To: b@example.net\r\n\
Subject: Signed over SMTP\r\n\
\r\n\
Body line one\r\n\
line two\r\n";
    let out = smtplib_send(
        app.smtp_addr.unwrap(),
        Connect::StartTls,
        Some(&app.key),
        &[Mail {
            from: "bounces@bounce.example.net",
            to: &["b@example.net"],
            data: message,
        }],
    )
    .await;
    let id = queued_id(out[1]["reply"].as_str().unwrap());
    let received = upstream.wait_for(1, WAIT).await;
    assert_eq!(received[0].mail_from, "bounces@bounce.example.net");
    let sig = signature_header(&received[0].data).expect("signed");
    assert_eq!(tag(&sig, "d").as_deref(), Some("example.com"));
    assert!(verifies(&received[0].data, &key), "{}", received[0].text());
    // Behind the signature, the message as submitted.
    assert!(received[0].data.ends_with(message));
    app.wait_for_status(&id, &["delivered"], WAIT).await;
}
