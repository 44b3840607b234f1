//! SendGrid's v3 send API: `POST /v3/mail/send` with `Authorization: Bearer <key>`. Each
//! personalization is a message of its own; the request is all or nothing, as SendGrid's:
//! one bad personalization refuses it, every problem listed. Answers `202` with an empty body
//! and `X-Message-Id`, or `200` without sending under `mail_settings.sandbox_mode`. Errors are
//! `{"errors": [{"message", "field", "help"}]}`: the SDKs raise by status.
//!
//! This file: where SendGrid's SDKs carry the key, and the route. `request`: the mail as the
//! SDKs send it; `mapping`: its personalizations into native requests; `errors`: SendGrid's
//! error body, statuses and field names; `routes`: the handler.

pub mod errors;
pub mod mapping;
pub mod request;
pub mod routes;

use axum::{
    Router,
    http::{HeaderMap, Method},
    response::Response,
    routing::post,
};

pub use routes::MESSAGE_IDS;

use crate::api::gate::Credentials;
use crate::api::{AppState, auth::bearer, error::ServiceError};

pub struct SendGrid;

impl Credentials for SendGrid {
    /// A bearer key; an `SG.` prefix is dropped, so a key can look like SendGrid's (the Node
    /// client warns about keys without it).
    fn token(headers: &HeaderMap) -> Option<String> {
        let token = bearer(headers).ok()?;
        let token = token.strip_prefix("SG.").unwrap_or(token);
        (!token.is_empty()).then(|| token.to_string())
    }

    /// A send may hold many personalizations: it charges them itself.
    fn sends_one(_: &Method, _: &str) -> bool {
        false
    }

    fn error(err: ServiceError) -> Response {
        errors::error(err)
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/mail/send", post(routes::send))
        .route("/v3/mail/send/", post(routes::send))
}
