//! What comes back after the upstream's 250: bounces (DSNs made by a real Postfix),
//! complaints (ARF), forged and unmatched reports, opens and clicks, and inbound mail — each
//! against a real mailgate with its inbound listener, Postgres and webhook receiver.

#[path = "../support/mod.rs"]
mod support;

mod bounces;
mod complaints;
mod received;
mod tracking;

use std::{net::SocketAddr, time::Duration};

use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor, address::Envelope};
use serde_json::Value;

use support::app::{JWT_SECRET, TestApp, TestAppBuilder};

/// The server's bounce domain in these tests.
pub const BOUNCES: &str = "bounces.example.test";
pub const WAIT: Duration = Duration::from_secs(30);

/// A mailgate with the inbound listener on a free port and VERP at `BOUNCES`; loopback
/// webhook receivers allowed, fast polling.
pub fn inbound_app() -> TestAppBuilder<'static> {
    TestApp::builder().webhooks_to_loopback().configure(|c| {
        c.bounce.domain = Some(BOUNCES.into());
        c.inbound.addr = Some("127.0.0.1:0".parse().unwrap());
        c.inbound.runner.poll_interval_ms = 100;
        c.webhooks.retry_schedule_secs = vec![0.3, 0.5, 0.5];
    })
}

pub fn operator_token() -> String {
    let secret: secrecy::SecretString = JWT_SECRET.to_string().into();
    mailgate::service::gate::mint_operator_token(&secret, Duration::from_secs(300)).unwrap()
}

/// Hands `raw` to an SMTP server with no TLS and no AUTH, as another MTA would; `from` `None`
/// is the null return path of a bounce.
pub async fn hand_in(
    addr: SocketAddr,
    from: Option<&str>,
    to: &str,
    raw: &[u8],
) -> Result<(), lettre::transport::smtp::Error> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let envelope =
        Envelope::new(from.map(|f| f.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
    transport.send_raw(&envelope, raw).await.map(|_| ())
}

/// The inbound log as the operator reads it.
pub async fn inbound_log(app: &TestApp) -> Vec<Value> {
    let (status, body) = app
        .call_as(&operator_token(), reqwest::Method::GET, "/v1/inbound", None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}
