//! The application's [`Gate`](crate::service::Gate) on the HTTP listener: one layer, generic
//! over where a route family carries its credentials ([`Credentials`]). The native `/v1`
//! routes are one provider of it (a bearer key or the operator's JWT); each provider's routes
//! (Resend, Postmark, SendGrid, Mailgun) another. The layer refuses client addresses with too
//! many failed authentications, authenticates the caller once (the extractors in `auth`
//! reuse the result), lets it through only as the route's rule in [`access::ROUTES`] says,
//! charges the route's unit and writes the `RateLimit-*` headers.
//!
//! Sending one message costs one unit of the key's `send` bucket; every other request one
//! unit of its `api` bucket. A route that accepts several messages (a batch) has them charged
//! by the core's `submit_batch`, and returns the decision as a response part; its headers
//! then replace the layer's.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{
    AppState,
    access::{self, Access},
    auth::bearer,
    error::ServiceError,
    headers::{RATELIMIT_LIMIT, write_headers},
};
use crate::{
    ratelimit::Class,
    service::{Caller, error::AuthFailure},
};

/// What the gate needs to know of a route family. Who may call each route is not the
/// family's to say: it is the one table, [`access::ROUTES`].
pub trait Credentials {
    /// The token as the family's clients send it, or `None` when the request carries none.
    fn token(headers: &HeaderMap) -> Option<String>;
    /// Why a request without a token is not authenticated (where the family wants it).
    fn no_token(_headers: &HeaderMap) -> AuthFailure {
        AuthFailure::Missing {
            expected: "API key",
        }
    }
    /// Whether the request sends exactly one message: it costs one unit of the `send`
    /// bucket. Any other request costs one `api` unit.
    fn sends_one(method: &Method, path: &str) -> bool;
    /// A refusal in the family's shape.
    fn error(err: ServiceError) -> Response;
}

/// The native API: `Authorization: Bearer <api key or operator JWT>`.
pub struct Native;

impl Credentials for Native {
    fn token(headers: &HeaderMap) -> Option<String> {
        bearer(headers).ok().map(str::to_string)
    }

    /// The header's own fault: missing, not text, not `Bearer`.
    fn no_token(headers: &HeaderMap) -> AuthFailure {
        match bearer(headers) {
            Err(ServiceError::Unauthorized(why)) => why,
            _ => AuthFailure::NotBearer,
        }
    }

    fn sends_one(method: &Method, path: &str) -> bool {
        method == Method::POST && path == "/v1/emails"
    }

    fn error(err: ServiceError) -> Response {
        err.into_response()
    }
}

pub async fn layer<C: Credentials>(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = client_ip(&state, &request);
    if let Err(err) = state.gate.admit(ip) {
        return C::error(err);
    }
    let Some(access) = route_access(&request) else {
        let path = matched(&request).unwrap_or_default().to_string();
        if access::knows_path(&path) {
            // Another method of a known route: the router answers 405.
            return next.run(request).await;
        }
        // Fails closed: a route nobody wrote a rule for is refused, loudly.
        return C::error(ServiceError::Internal(anyhow::anyhow!(
            "no access rule for {} {path} in api::access::ROUTES",
            request.method()
        )));
    };
    if access == Access::Open {
        return next.run(request).await;
    }
    let caller = match identify::<C>(&state, request.headers(), access).await {
        Ok(caller) => caller,
        Err(err) => {
            if matches!(err, ServiceError::Unauthorized(_)) {
                state.gate.failed(ip);
            }
            return C::error(err);
        }
    };
    if let Err(err) = access::authorize(&caller, access) {
        return C::error(err);
    }
    let class = if C::sends_one(request.method(), request.uri().path()) {
        Class::Send
    } else {
        Class::Api
    };
    let decision = match state.gate.charge(&caller, class, 1).await {
        Ok(d) => d,
        Err(err) => return C::error(err),
    };
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    // Failures the handlers found count too.
    if response.status() == StatusCode::UNAUTHORIZED {
        state.gate.failed(ip);
    }
    if let Some(d) = decision
        && response.status() != StatusCode::TOO_MANY_REQUESTS
        && !response.headers().contains_key(RATELIMIT_LIMIT)
    {
        write_headers(&d, response.headers_mut());
    }
    response
}

/// The route the router matched (the gate is a route layer, so there is one).
fn matched(request: &Request) -> Option<&str> {
    request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
}

fn route_access(request: &Request) -> Option<Access> {
    access::access(request.method(), matched(request)?)
}

/// The caller behind the request's token: a key (`mg_…`), or the operator's JWT. On a route
/// for keys only, a token that is neither is refused as a key.
async fn identify<C: Credentials>(
    state: &AppState,
    headers: &HeaderMap,
    access: Access,
) -> Result<Caller, ServiceError> {
    let token =
        C::token(headers).ok_or_else(|| ServiceError::Unauthorized(C::no_token(headers)))?;
    if token.starts_with("mg_") {
        return Ok(Caller::Key(state.gate.key(&token).await?));
    }
    match state.gate.operator(&token) {
        Ok(_) => Ok(Caller::Operator),
        Err(_) if matches!(access, Access::Key(_)) => {
            Err(ServiceError::Unauthorized(AuthFailure::InvalidKey))
        }
        Err(err) => Err(err),
    }
}

/// The client's address: the listener's peer, or the client a trusted proxy names
/// (`http.trusted_proxies`). Absent when the router is driven without a socket, in oneshot
/// tests.
pub fn client_ip(state: &AppState, request: &Request) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()?
        .0
        .ip();
    Some(state.gate.client_addr(peer, request.headers()))
}
