//! The rate-limit layer of the HTTP surface, around every `/v1` route: it refuses client
//! addresses with too many failed authentications, authenticates the caller once (the
//! extractors in `auth` reuse the result), charges the route's unit and writes the
//! `RateLimit-*` headers on the response.
//!
//! `POST /v1/emails` is one message, one unit of the key's `send` bucket; every other request
//! is one unit of its `api` bucket. A handler that accepts several messages (a batch) charges
//! them itself and returns the decision as a response part:
//! `let d = state.limiter.check(key.id, &key.limits, Class::Send, n).await?;
//! Ok((d, Json(body)))`; its
//! headers then replace the layer's.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, IntoResponseParts, Response, ResponseParts},
};
use uuid::Uuid;

use super::{
    AppState,
    auth::{Caller, authenticate_key, bearer, verify_operator},
    error::ApiError,
};
use crate::{
    domain::api_key::KeyLimits,
    ratelimit::{Class, Decision},
};

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

pub async fn layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let ip = match client_ip(&state, &request) {
        Ok(ip) => ip,
        Err(err) => return err.into_response(),
    };
    let caller = match identify(&state, request.headers()).await {
        Ok(caller) => caller,
        Err(err) => {
            if let (ApiError::Unauthorized(_), Some(ip)) = (&err, ip) {
                state.auth_throttle.failed(ip);
            }
            return err.into_response();
        }
    };
    let mut decision = None;
    if let Some(caller) = caller {
        let (subject, limits, class) = match &caller {
            Caller::Key(key) => (key.id, key.limits, class_of(&request)),
            // The operator has no send bucket; its calls all count as `api`.
            Caller::Operator => (Uuid::nil(), KeyLimits::default(), Class::Api),
        };
        match state.limiter.check(subject, &limits, class, 1).await {
            Ok(d) => decision = d,
            Err(refusal) => return ApiError::from(refusal).into_response(),
        }
        request.extensions_mut().insert(caller);
    }
    let mut response = next.run(request).await;
    // Failures the handlers found (no header, a bad operator token) count too.
    if response.status() == StatusCode::UNAUTHORIZED
        && let Some(ip) = ip
    {
        state.auth_throttle.failed(ip);
    }
    if let Some(d) = decision
        && !response.headers().contains_key(RATELIMIT_LIMIT)
    {
        write_headers(&d, response.headers_mut());
    }
    response
}

/// The client's address, refused while it has too many failed authentications. Absent only
/// when the router is driven without a socket (oneshot tests).
pub(super) fn client_ip(
    state: &AppState,
    request: &Request,
) -> Result<Option<std::net::IpAddr>, ApiError> {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip
        && let Err(wait) = state.auth_throttle.check(ip)
    {
        return Err(ApiError::AuthThrottled(wait));
    }
    Ok(ip)
}

/// An API key is checked here, so a bad one costs one lookup and is answered at once. Other
/// tokens are kept only when they are a valid operator JWT: for anything else the route's
/// extractor gives the precise 401 (a key route says "invalid API key", not "bad JWT").
async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let Ok(token) = bearer(headers) else {
        return Ok(None);
    };
    if token.starts_with("mg_") {
        return authenticate_key(state, token)
            .await
            .map(|key| Some(Caller::Key(key)));
    }
    Ok(verify_operator(state, token)
        .is_ok()
        .then_some(Caller::Operator))
}

fn class_of(request: &Request) -> Class {
    if request.method() == Method::POST && request.uri().path() == "/v1/emails" {
        Class::Send
    } else {
        Class::Api
    }
}

pub fn write_headers(d: &Decision, headers: &mut HeaderMap) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(d.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(d.reset_secs()));
    // Digits, `;`, `,`, `=` and letters only: always a valid header value.
    if let Ok(policy) = HeaderValue::from_str(&d.params.policy()) {
        headers.insert(RATELIMIT_POLICY, policy);
    }
}

/// A handler's own charge (a batch's messages) as headers of its response.
impl IntoResponseParts for Decision {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        write_headers(&self, res.headers_mut());
        Ok(res)
    }
}
