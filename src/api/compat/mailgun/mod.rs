//! Mailgun's send API: `POST /v3/{domain}/messages`, a multipart (or URL-encoded) form, with
//! `Authorization: Basic base64("api:<key>")`. Answers `200 {"id": "<…@domain>", "message":
//! "Queued. Thank you."}`; errors are `{"message"}` (a bad key the plain-text `Forbidden`),
//! which mailgun.js turns into its `APIError` and mailgun-python returns as the response.
//!
//! This file: where Mailgun's SDKs carry the key, and the route. `request`: the form as the
//! SDKs send it; `mapping`: the form into the native request, the answer into Mailgun's;
//! `errors`: Mailgun's error bodies; `batch`: batch sending (`recipient-variables`), one
//! message per recipient; `routes`: the handler.

pub mod batch;
pub mod errors;
pub mod mapping;
pub mod request;
pub mod routes;

use axum::{
    Router,
    http::{HeaderMap, Method, header},
    response::Response,
    routing::post,
};
use base64::Engine;

use crate::api::gate::Credentials;
use crate::api::{AppState, error::ServiceError};

pub struct Mailgun;

impl Credentials for Mailgun {
    /// The password of Basic `api:<key>`, as the SDKs send it, or a bearer key, as every
    /// other mailgate route takes it.
    fn token(headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, encoded) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = encoded.trim();
            return (!token.is_empty()).then(|| token.to_string());
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let (_, key) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        (!key.is_empty()).then(|| key.to_string())
    }

    /// A send may be a batch (`recipient-variables`): the route charges its messages.
    fn sends_one(_: &Method, _: &str) -> bool {
        false
    }

    fn error(err: ServiceError) -> Response {
        errors::error(err)
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/{domain}/messages", post(routes::send))
        .route("/v3/{domain}/messages/", post(routes::send))
}
