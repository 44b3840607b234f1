//! `/t/o/{token}` and `/t/c/{token}`: the open pixel and the click redirect of tracked mail.
//! No key: the signed token is the credential, and it names one message (and, for a click,
//! one URL that was in it). A bad token, or one of a message retention deleted, is a 404;
//! nothing here ever redirects elsewhere. What is recorded, and how much, is
//! `service::tracking`'s.

use std::net::SocketAddr;

use axum::{
    Router,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::{AppState, error::ServiceError};
use crate::service::tracking::{self, Hit};

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
        (status = 200, description = "A transparent 1×1 GIF. The open is counted, and recorded as an `opened` event when it is the first in `tracking.open_window_secs`; beyond `tracking.per_ip_per_minute` or `per_token_per_minute` the pixel is served and nothing is recorded", content_type = "image/gif"),
        (status = 404, description = "Not a token of this server, or its message was deleted by retention (`not_found`)", body = super::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn open(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ServiceError> {
    tracking::open(&state, &token, &hit(&state, &headers, peer)).await?;
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
        (status = 302, description = "To the link's original URL. The click is recorded, unless beyond `tracking.per_ip_per_minute` or `per_token_per_minute`: then it redirects all the same and records nothing"),
        (status = 404, description = "Not a token of this server, or its message was deleted by retention (`not_found`)", body = super::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn click(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ServiceError> {
    let url = tracking::click(&state, &token, &hit(&state, &headers, peer)).await?;
    let location =
        HeaderValue::from_str(&url).map_err(|_| ServiceError::NotFound("tracking token"))?;
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

/// The client as the request shows it: its address behind the trusted proxies
/// (`http.trusted_proxies`), and its user agent.
fn hit(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> Hit {
    Hit {
        ip: state.gate.client_addr(peer.ip(), headers),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}
