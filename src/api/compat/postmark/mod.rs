//! Postmark's send API: `POST /email`, `/email/batch`, `/email/withTemplate` and
//! `/email/batchWithTemplates` (each also with a trailing slash, which postmarker adds), with
//! `X-Postmark-Server-Token: <key>`. Errors are `{"ErrorCode", "Message"}` with Postmark's
//! statuses: the SDKs choose their exception class by the code (10 bad token, 300 invalid
//! request) and the status (401, 422, 429).
//!
//! This file: where Postmark's SDKs carry the key, and the routes. `request`: the bodies as
//! the SDKs send them; `mapping`: those into the native request, answers into Postmark's
//! results; `errors`: Postmark's error body, codes and field names; `routes`: the handlers;
//! `test_token`: requests with Postmark's test token, checked and not sent.

pub mod errors;
pub mod mapping;
pub mod request;
pub mod routes;
pub mod test_token;

use axum::{
    Router,
    http::{HeaderMap, Method},
    response::Response,
    routing::post,
};

use crate::api::gate::Credentials;
use crate::api::{AppState, error::ServiceError};

pub struct Postmark;

/// The header the Postmark SDKs send the server token in.
const TOKEN_HEADER: &str = "x-postmark-server-token";

impl Credentials for Postmark {
    fn token(headers: &HeaderMap) -> Option<String> {
        let token = headers.get(TOKEN_HEADER)?.to_str().ok()?.trim();
        (!token.is_empty()).then(|| token.to_string())
    }

    fn sends_one(method: &Method, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        method == Method::POST && (path == "/email" || path == "/email/withTemplate")
    }

    fn error(err: ServiceError) -> Response {
        errors::error(err)
    }
}

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for (path, handler) in [
        ("/email", post(routes::send)),
        ("/email/batch", post(routes::send_batch)),
        ("/email/withTemplate", post(routes::send_with_template)),
        (
            "/email/batchWithTemplates",
            post(routes::send_batch_with_templates),
        ),
    ] {
        router = router
            .route(path, handler.clone())
            .route(&format!("{path}/"), handler);
    }
    router
}
