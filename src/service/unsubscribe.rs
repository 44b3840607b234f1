//! One-click unsubscribe (RFC 8058): the anonymous `POST /u/<token>` a mailbox provider (or
//! the recipient's browser) sends. The signed token names the project, the message and the
//! one recipient it was made for, so it can only ever suppress that address in that project.
//!
//! What one costs is bounded like a tracking hit: a bad token is `NotFound` after one HMAC;
//! a good one is charged to the client (an IPv4 address or an IPv6 /64) and to the token,
//! `tracking.per_ip_per_minute` and `per_token_per_minute` (the tracking limiter class), and
//! beyond them it is refused with a 429 before anything is written. A repeated unsubscribe
//! writes nothing new.

use std::net::IpAddr;

use serde_json::json;
use uuid::Uuid;

use super::{
    AppState, ServiceError, ServiceResult,
    tracking::{charge_client_and_token, subject},
};
use crate::{service::suppressions::Reason, store};

/// What a verified token names.
pub struct Unsubscribe {
    pub project: Uuid,
    pub message: Uuid,
    pub email: String,
}

/// Checks a token: `NotFound` unless this server signed it. Reads nothing.
pub fn verify(state: &AppState, token: &str) -> ServiceResult<Unsubscribe> {
    let (project, message, email) = state
        .tokens
        .verify_unsubscribe(token)
        .ok_or(ServiceError::NotFound("unsubscribe link"))?;
    Ok(Unsubscribe {
        project,
        message,
        email,
    })
}

/// Suppresses the token's address in its project (reason `unsubscribe`) and records an
/// `unsubscribed` event on its message, which sends `email.unsubscribed`. The event needs the
/// message: once retention deleted it, the address is still suppressed, without a webhook.
/// An address already suppressed (for any reason) stays as it is, and nothing is recorded.
pub async fn unsubscribe(state: &AppState, token: &str, ip: IpAddr) -> ServiceResult<()> {
    let u = verify(state, token)?;
    admit(state, ip, token).await?;
    let (_, new) = store::suppressions::add(
        &state.pool,
        u.project,
        &u.email,
        Reason::Unsubscribe.as_str(),
        Some("one-click unsubscribe (RFC 8058)"),
    )
    .await?;
    metrics::counter!("mailgate_unsubscribes_total", "new" => new.to_string()).increment(1);
    if new {
        let data =
            json!({ "ip": state.config.tracking.record_ip.then(|| ip.to_canonical().to_string()) });
        if store::tracking::record_unsubscribe(&state.pool, u.project, u.message, &u.email, &data)
            .await?
        {
            state.waker.webhooks.wake();
        }
    }
    Ok(())
}

/// One unit of the client's bucket, then of the token's; a refusal is the 429 it answers.
async fn admit(state: &AppState, ip: IpAddr, token: &str) -> ServiceResult<()> {
    let token_subject = subject(b"unsubscribe", &[token.as_bytes()]);
    charge_client_and_token(state, ip, token_subject).await
}
