//! Opens and clicks of tracked mail: the anonymous `/t/o/…` and `/t/c/…` requests. The signed
//! token is the only credential, so what one costs is bounded here:
//!
//! - a token of a message retention deleted is `NotFound`, like a forged one;
//! - each client (an IPv4 address or an IPv6 /64) and each token get
//!   `tracking.per_ip_per_minute` and `per_token_per_minute` recorded hits, in buckets shared
//!   through Redis (the limiter's local fallback while it is away). Beyond them nothing is
//!   written: the pixel is still served and the link still redirects, since the reader did
//!   nothing wrong, but the cost is one token check, the limiter and one indexed read;
//! - within `tracking.open_window_secs` of a recorded open, an open is only counted.

use std::net::IpAddr;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{AppState, ServiceError, ServiceResult};
use crate::{
    domain::api_key::KeyLimits,
    ratelimit::{Class, client_prefix},
    store::{self, tracking::Open},
};

/// Who loaded the pixel or followed the link, as the request says.
pub struct Hit {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

/// An open of the message `token` names. `NotFound` for a token that is not ours or whose
/// message is gone.
pub async fn open(state: &AppState, token: &str, hit: &Hit) -> ServiceResult<()> {
    let id = state
        .tokens
        .verify_open(token)
        .ok_or(ServiceError::NotFound("tracking token"))?;
    if !admitted(state, hit.ip, &subject(b"open", &[id.as_bytes()])).await {
        return still_there(state, id).await;
    }
    let data = client(state, hit);
    match store::tracking::record_open(
        &state.pool,
        id,
        &data,
        state.config.tracking.open_window_secs,
    )
    .await?
    {
        Open::Gone => Err(ServiceError::NotFound("tracking token")),
        Open::Counted { recorded, .. } => {
            metrics::counter!("mailgate_tracking_total", "kind" => "open", "recorded" => recorded.to_string())
                .increment(1);
            if recorded {
                state.waker.webhooks.wake();
            }
            Ok(())
        }
    }
}

/// A click on a link of the message `token` names: the URL to redirect to. `NotFound` for a
/// token that is not ours or whose message is gone.
pub async fn click(state: &AppState, token: &str, hit: &Hit) -> ServiceResult<String> {
    let (id, url) = state
        .tokens
        .verify_click(token)
        .ok_or(ServiceError::NotFound("tracking token"))?;
    // Signed by this server, so it was an http(s) link of the message; checked again so a
    // leaked key still cannot make this a redirect to another scheme.
    // Nor a URL a Location header cannot carry.
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.chars().any(char::is_control)
    {
        return Err(ServiceError::NotFound("tracking token"));
    }
    if !admitted(
        state,
        hit.ip,
        &subject(b"click", &[id.as_bytes(), url.as_bytes()]),
    )
    .await
    {
        still_there(state, id).await?;
        return Ok(url);
    }
    let mut data = client(state, hit);
    data["url"] = json!(if state.config.tracking.record_query {
        url.clone()
    } else {
        crate::tracking::without_query(&url)
    });
    if !store::tracking::record_click(&state.pool, id, &data).await? {
        return Err(ServiceError::NotFound("tracking token"));
    }
    metrics::counter!("mailgate_tracking_total", "kind" => "click", "recorded" => "true")
        .increment(1);
    state.waker.webhooks.wake();
    Ok(url)
}

/// Takes one unit of the client's and then of the token's bucket; false when either is out
/// (or the limiter refuses for another reason, e.g. fail-closed without Redis).
async fn admitted(state: &AppState, ip: IpAddr, token: &Uuid) -> bool {
    if charge_client_and_token(state, ip, *token).await.is_err() {
        metrics::counter!("mailgate_tracking_limited_total").increment(1);
        return false;
    }
    true
}

/// One unit of the client's bucket (an IPv4 address or an IPv6 /64), then of the token's,
/// sized by `tracking.per_ip_per_minute` and `per_token_per_minute` (0: that bucket is off).
/// The anonymous links of a message (opens, clicks, unsubscribe) share these bounds.
pub(super) async fn charge_client_and_token(
    state: &AppState,
    ip: IpAddr,
    token_subject: Uuid,
) -> ServiceResult<()> {
    let tracking = &state.config.tracking;
    let ip_subject = match client_prefix(ip) {
        IpAddr::V4(v4) => subject(b"ip", &[&v4.octets()]),
        IpAddr::V6(v6) => subject(b"ip", &[&v6.octets()]),
    };
    for (subject, per_minute) in [
        (ip_subject, tracking.per_ip_per_minute),
        (token_subject, tracking.per_token_per_minute),
    ] {
        if per_minute == 0 {
            continue;
        }
        let limits = KeyLimits {
            rate_per_sec: Some(f64::from(per_minute) / 60.0),
            burst: Some(per_minute),
            daily_quota: None,
        };
        state
            .gate
            .charge_as(subject, &limits, Class::Tracking, 1)
            .await?;
    }
    Ok(())
}

/// A hit beyond the limits records nothing, but a deleted message's token is still dead.
async fn still_there(state: &AppState, id: Uuid) -> ServiceResult<()> {
    if store::tracking::exists(&state.pool, id).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound("tracking token"))
    }
}

/// A bucket's name: the rate-limit subjects are ids, so a client or token is hashed into one.
pub(super) fn subject(label: &[u8], parts: &[&[u8]]) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(b"mailgate tracking ");
    hash.update(label);
    for part in parts {
        hash.update([0]);
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// What is recorded about the client: its user agent, and its address unless
/// `tracking.record_ip` is off.
fn client(state: &AppState, hit: &Hit) -> Value {
    let user_agent = hit
        .user_agent
        .as_deref()
        .map(|ua| ua.chars().take(512).collect::<String>());
    let ip = state
        .config
        .tracking
        .record_ip
        .then(|| hit.ip.to_canonical().to_string());
    json!({"user_agent": user_agent, "ip": ip})
}
