//! The messages of one request with the same content for different recipients are scanned
//! once: clamd is reached through a proxy the test owns, which counts its connections (clamd
//! takes one per scan).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use base64::Engine;
use serde_json::{Value, json};

use super::{EICAR, scanners, scanning_app};
use crate::support::{app::status_and_json, smtp_server::TestSmtpServer};

/// A TCP proxy to `upstream` that counts the connections made through it.
struct CountingProxy {
    addr: String,
    connections: Arc<AtomicUsize>,
}

impl CountingProxy {
    async fn start(upstream: String) -> Self {
        assert!(
            !upstream.starts_with('/'),
            "MAILGATE_TEST_CLAMD_ADDR must be host:port for this test, not {upstream}"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        CountingProxy { addr, connections }
    }

    fn scans(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn attachment(bytes: &[u8]) -> Value {
    json!([{
        "filename": "file.bin",
        "content": base64::engine::general_purpose::STANDARD.encode(bytes),
        "content_type": "application/octet-stream"
    }])
}

#[tokio::test]
async fn identical_content_in_one_request_is_scanned_once() {
    let smtp = TestSmtpServer::start().await;
    let proxy = CountingProxy::start(scanners().1).await;
    let clamd = proxy.addr.clone();
    let app = scanning_app(&smtp)
        .configure(move |c| c.scan.clamd_addr = Some(clamd))
        .start()
        .await;

    // Five personalizations of one SendGrid mail sharing a file: one scan.
    let to: Vec<Value> = (0..5)
        .map(|i| json!({"to": [{"email": format!("r{i}@example.org")}]}))
        .collect();
    let mail = json!({
        "from": {"email": "app@example.com"}, "subject": "Your invoice",
        "personalizations": to,
        "content": [{"type": "text/plain", "value": "The invoice is attached."}],
        "attachments": [{"content": base64::engine::general_purpose::STANDARD.encode([7u8; 4096]), "filename": "invoice.pdf", "type": "application/pdf"}]
    });
    let r = app
        .request_as(&app.key, reqwest::Method::POST, "/v3/mail/send")
        .json(&mail)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let ids = r.headers()["x-mailgate-message-ids"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(proxy.scans(), 1, "five messages, one content");
    // Each message has the verdict kept with it.
    for id in ids.split(", ") {
        let email = app.get_email(id).await;
        assert_eq!(email.scan["clamd"]["virus"], Value::Null, "{email:#}");
        assert!(email.scan["rspamd"]["action"].is_string(), "{email:#}");
    }

    // A native batch: two contents, two scans; a virus in three identical items is found
    // once and refuses each of them.
    let item = |text: &str, file: &[u8]| {
        let mut m = json!({"from": "app@example.com", "to": "ada@example.org", "subject": "Hi", "text": text});
        m["attachments"] = attachment(file);
        m
    };
    let clean = item("one", b"clean");
    let other = item("two", b"clean");
    let virus = item("three", EICAR.as_bytes());
    let batch = json!([clean, other, clean, virus, virus, virus]);
    let (status, body) = status_and_json(app.post_batch_raw(&app.key, &batch).await).await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 202, 202, 422, 422, 422], "{body}");
    assert_eq!(body["data"][5]["body"]["code"], "content_rejected");
    assert_eq!(proxy.scans(), 1 + 3, "three contents in the batch");

    // Another request scans again: verdicts are kept for one request only.
    let (status, _) = status_and_json(app.post_batch_raw(&app.key, &json!([clean])).await).await;
    assert_eq!(status, 200);
    assert_eq!(proxy.scans(), 5);
}
