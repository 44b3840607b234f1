//! The layer around each provider's routes, as `api::limits` is around `/v1`: the failed-auth
//! throttle, the key from the provider's own header (a mailgate API key with the `send`
//! scope), and one unit of the key's rate limit, every refusal in the provider's shape.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode},
    middleware::Next,
    response::Response,
};

use super::{mailgun::Mailgun, postmark::Postmark, resend::Resend, sendgrid::SendGrid};
use crate::{
    api::{
        AppState,
        auth::{Caller, authenticate_key},
        error::ApiError,
        limits::{RATELIMIT_LIMIT, client_ip, write_headers},
    },
    domain::Scope,
    ratelimit::Class,
};

/// The message of the 401 for a request without credentials; providers that tell "missing"
/// from "invalid" (Resend) look for it.
pub const MISSING_KEY: &str = "missing API key";

/// What the layer needs to know of a provider.
pub trait Provider {
    /// The key as the provider's SDK sends it, or `None` when the request carries none.
    fn token(headers: &HeaderMap) -> Option<String>;
    /// Whether the request sends exactly one message: it costs one unit of the `send` bucket.
    /// Any other request costs one `api` unit (a batch charges its messages itself).
    fn sends_one(method: &Method, path: &str) -> bool;
    /// An error in the provider's shape.
    fn error(err: ApiError) -> Response;
}

pub async fn resend(state: State<AppState>, request: Request, next: Next) -> Response {
    guard::<Resend>(state, request, next).await
}

pub async fn postmark(state: State<AppState>, request: Request, next: Next) -> Response {
    guard::<Postmark>(state, request, next).await
}

pub async fn sendgrid(state: State<AppState>, request: Request, next: Next) -> Response {
    guard::<SendGrid>(state, request, next).await
}

pub async fn mailgun(state: State<AppState>, request: Request, next: Next) -> Response {
    guard::<Mailgun>(state, request, next).await
}

async fn guard<P: Provider>(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = match client_ip(&state, &request) {
        Ok(ip) => ip,
        Err(err) => return P::error(err),
    };
    let key = match P::token(request.headers()) {
        None => Err(ApiError::Unauthorized(MISSING_KEY.into())),
        Some(token) => authenticate_key(&state, &token).await,
    };
    let key = match key {
        Ok(key) => key,
        Err(err) => {
            if let (ApiError::Unauthorized(_), Some(ip)) = (&err, ip) {
                state.auth_throttle.failed(ip);
            }
            return P::error(err);
        }
    };
    if !key.scopes.contains(&Scope::Send) {
        return P::error(ApiError::ForbiddenScope(Scope::Send.as_str()));
    }
    let class = if P::sends_one(request.method(), request.uri().path()) {
        Class::Send
    } else {
        Class::Api
    };
    let decision = match state.limiter.check(key.id, &key.limits, class, 1).await {
        Ok(d) => d,
        Err(refusal) => return P::error(ApiError::from(refusal)),
    };
    request.extensions_mut().insert(Caller::Key(key));
    let mut response = next.run(request).await;
    if let Some(d) = decision
        && response.status() != StatusCode::TOO_MANY_REQUESTS
        && !response.headers().contains_key(RATELIMIT_LIMIT)
    {
        write_headers(&d, response.headers_mut());
    }
    response
}
