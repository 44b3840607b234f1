//! `/t/o/{token}` and `/t/c/{token}`: the open pixel and the click redirect of tracked mail.
//! No key: the signed token is the credential, and it names one message (and, for a click,
//! one URL that was in it). A bad token is a 404; nothing here ever redirects elsewhere.

use std::net::SocketAddr;

use axum::{
    Router,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use super::{AppState, error::ServiceError};
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/t/o/{token}", get(open))
        .route("/t/c/{token}", get(click))
}

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// The open pixel of a tracked message.
#[utoipa::path(get, path = "/t/o/{token}", operation_id = "track_open", tag = "tracking",
    params(("token" = String, Path, description = "The signed token in the message's pixel")),
    responses(
        (status = 200, description = "A transparent 1×1 GIF; the open is recorded", content_type = "image/gif"),
        (status = 404, description = "Not a token of this server (`not_found`)", body = super::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn open(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ServiceError> {
    let id = state
        .tokens
        .verify_open(&token)
        .ok_or(ServiceError::NotFound("tracking token"))?;
    let data = client(&state, &headers, peer);
    store::tracking::record(&state.pool, id, "opened", &data).await?;
    metrics::counter!("mailgate_tracking_total", "kind" => "open").increment(1);
    state.waker.webhooks.wake();
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/gif")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, max-age=0"),
            ),
        ],
        PIXEL,
    )
        .into_response())
}

/// A tracked link: records the click and redirects to the URL that was in the message.
#[utoipa::path(get, path = "/t/c/{token}", operation_id = "track_click", tag = "tracking",
    params(("token" = String, Path, description = "The signed token of one link of one message")),
    responses(
        (status = 302, description = "To the link's original URL; the click is recorded"),
        (status = 404, description = "Not a token of this server (`not_found`)", body = super::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn click(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ServiceError> {
    let (id, url) = state
        .tokens
        .verify_click(&token)
        .ok_or(ServiceError::NotFound("tracking token"))?;
    // Signed by this server, so it was an http(s) link of the message; checked again so a
    // leaked key still cannot make this a redirect to another scheme.
    let location = HeaderValue::from_str(&url)
        .ok()
        .filter(|_| url.starts_with("http://") || url.starts_with("https://"))
        .ok_or(ServiceError::NotFound("tracking token"))?;
    let mut data = client(&state, &headers, peer);
    data["url"] = json!(url);
    store::tracking::record(&state.pool, id, "clicked", &data).await?;
    metrics::counter!("mailgate_tracking_total", "kind" => "click").increment(1);
    state.waker.webhooks.wake();
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, max-age=0"),
            ),
        ],
    )
        .into_response())
}

/// What is recorded about the client: its user agent, and its address (behind the trusted
/// proxies, `http.trusted_proxies`) unless `tracking.record_ip` is off.
fn client(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> serde_json::Value {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect::<String>());
    let ip = state
        .config
        .tracking
        .record_ip
        .then(|| state.gate.client_addr(peer.ip(), headers).to_string());
    json!({"user_agent": user_agent, "ip": ip})
}
