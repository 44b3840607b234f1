//! The application's [`Gate`](crate::service::Gate) on the HTTP listener: one layer, generic
//! over where a route family carries its credentials ([`Credentials`]). The native `/v1`
//! routes are one provider of it (a bearer key or the operator's JWT); each provider's routes
//! (Resend, Postmark, SendGrid, Mailgun) another. The layer refuses client addresses with too
//! many failed authentications, authenticates the caller once (the extractors in `auth`
//! reuse the result), charges the route's unit and writes the `RateLimit-*` headers.
//!
//! Sending one message costs one unit of the key's `send` bucket; every other request one
//! unit of its `api` bucket. A route that accepts several messages (a batch) has them charged
//! by the core's `submit_batch`, and returns the decision as a response part; its headers
//! then replace the layer's.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{
    AppState,
    auth::bearer,
    error::ServiceError,
    headers::{RATELIMIT_LIMIT, write_headers},
};
use crate::{
    domain::Scope,
    ratelimit::Class,
    service::{Caller, error::AuthFailure},
};

/// Who a route family admits.
pub enum Admits {
    /// A project key or the operator. A request without either goes on unauthenticated, so
    /// the route's extractor gives the precise 401 (a key route says "invalid API key", an
    /// operator route "invalid operator token").
    KeyOrOperator,
    /// Only a project key holding this scope; anything else is refused here.
    KeyWithScope(Scope),
}

/// What the gate needs to know of a route family.
pub trait Credentials {
    /// Who the routes admit.
    const ADMITS: Admits;
    /// The token as the family's clients send it, or `None` when the request carries none.
    fn token(headers: &HeaderMap) -> Option<String>;
    /// Whether the request sends exactly one message: it costs one unit of the `send`
    /// bucket. Any other request costs one `api` unit.
    fn sends_one(method: &Method, path: &str) -> bool;
    /// A refusal in the family's shape.
    fn error(err: ServiceError) -> Response;
    /// The scope a route needs when it is not the family's own (`ADMITS`): a route that reads
    /// mail needs what its native twin needs (`messages`), not `send`.
    fn scope_of(_method: &Method, _path: &str) -> Option<Scope> {
        None
    }
}

/// The native API: `Authorization: Bearer <api key or operator JWT>`.
pub struct Native;

impl Credentials for Native {
    const ADMITS: Admits = Admits::KeyOrOperator;

    fn token(headers: &HeaderMap) -> Option<String> {
        bearer(headers).ok().map(str::to_string)
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
    let route_scope = C::scope_of(request.method(), request.uri().path());
    let caller = match identify::<C>(&state, request.headers(), route_scope).await {
        Ok(caller) => caller,
        Err(err) => {
            if matches!(err, ServiceError::Unauthorized(_)) {
                state.gate.failed(ip);
            }
            return C::error(err);
        }
    };
    let mut decision = None;
    if let Some(caller) = caller {
        let class = if C::sends_one(request.method(), request.uri().path()) {
            Class::Send
        } else {
            Class::Api
        };
        match state.gate.charge(&caller, class, 1).await {
            Ok(d) => decision = d,
            Err(err) => return C::error(err),
        }
        request.extensions_mut().insert(caller);
    }
    let mut response = next.run(request).await;
    // Failures the handlers found (no header, a bad operator token) count too.
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

async fn identify<C: Credentials>(
    state: &AppState,
    headers: &HeaderMap,
    route_scope: Option<Scope>,
) -> Result<Option<Caller>, ServiceError> {
    let token = C::token(headers);
    match C::ADMITS {
        Admits::KeyOrOperator => {
            let Some(token) = token else { return Ok(None) };
            if token.starts_with("mg_") {
                return state.gate.key(&token).await.map(|k| Some(Caller::Key(k)));
            }
            Ok(state
                .gate
                .operator(&token)
                .is_ok()
                .then_some(Caller::Operator))
        }
        Admits::KeyWithScope(scope) => {
            let token = token.ok_or(ServiceError::Unauthorized(AuthFailure::Missing {
                expected: "API key",
            }))?;
            let key = state.gate.key(&token).await?;
            crate::service::gate::require(&key, route_scope.unwrap_or(scope))?;
            Ok(Some(Caller::Key(key)))
        }
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
