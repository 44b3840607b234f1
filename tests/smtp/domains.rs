//! `domains.require_verified` over SMTP: mail whose From header is not at a verified sending
//! domain of the key's project is refused with `550 5.7.1` and never queued.

use reqwest::Method;
use serde_json::json;

use crate::{
    client::{Connect, Mail, queued_id, smtplib_send},
    support::{app::TestApp, dns_server::TestDns},
};

fn message(from: &str) -> Vec<u8> {
    format!(
        "Date: Thu, 02 Jan 2025 03:04:05 +0000\r\nFrom: Shop <{from}>\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhi\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn smtp_mail_from_an_unverified_domain_is_refused_with_550_and_not_queued() {
    let dns = TestDns::start().await;
    let app = TestApp::builder()
        .configure(|c| {
            c.dns.nameservers = vec![dns.addr.to_string()];
            c.domains.spf_include = Some("_spf.relay.test".into());
            c.domains.require_verified = true;
        })
        .start()
        .await;
    let unverified = message("shop@shop.test");
    let out = smtplib_send(
        app.smtp_addr.unwrap(),
        Connect::StartTls,
        Some(&app.key),
        &[Mail {
            // The envelope says nothing: the From header is what receivers align on.
            from: "bounces@shop.test",
            to: &["b@example.net"],
            data: &unverified,
        }],
    )
    .await;
    assert_eq!(out[1]["code"], 550, "{out:?}");
    let error = out[1]["error"].as_str().unwrap();
    assert!(error.starts_with("5.7.1"), "{error}");
    assert!(error.contains("shop.test"), "{error}");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(queued, 0);

    // Verified: the same message is taken.
    let (status, domain) = app
        .call(
            Method::POST,
            "/v1/domains",
            Some(json!({"name": "shop.test"})),
        )
        .await;
    assert_eq!(status, 201, "{domain}");
    for r in domain["records"].as_array().unwrap() {
        if r["required"] == true {
            dns.txt(r["name"].as_str().unwrap(), r["value"].as_str().unwrap());
        }
    }
    let (_, verified) = app
        .call(
            Method::POST,
            &format!("/v1/domains/{}/verify", domain["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(verified["status"], "verified", "{verified}");
    let out = smtplib_send(
        app.smtp_addr.unwrap(),
        Connect::StartTls,
        Some(&app.key),
        &[Mail {
            from: "bounces@shop.test",
            to: &["b@example.net"],
            data: &unverified,
        }],
    )
    .await;
    queued_id(
        out[1]["reply"]
            .as_str()
            .unwrap_or_else(|| panic!("{out:?}")),
    );
}
