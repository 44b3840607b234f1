//! Resend's send API: `POST /emails`, `POST /emails/batch` (`x-batch-validation`),
//! `GET /emails/{id}`, `POST /emails/{id}/cancel`, and its Domains API (`domains`), with `Authorization: Bearer <key>` and
//! `Idempotency-Key`. Errors are `{"statusCode", "name", "message"}`: resend-python picks its
//! exception class from the status and `name`, resend-node returns them as `error`.
//!
//! This file: where Resend's SDKs carry the key, and the routes. `request`: the bodies as
//! the SDKs send them; `mapping`: those into the native request, answers into Resend's
//! shapes; `errors`: Resend's error body and statuses; `routes`: the handlers.

pub mod domains;
pub mod errors;
pub mod mapping;
pub mod request;
pub mod routes;

use axum::{
    Router,
    http::{HeaderMap, Method},
    response::Response,
    routing::{get, post},
};

use crate::api::gate::Credentials;
use crate::api::{AppState, auth::bearer, error::ServiceError};

pub struct Resend;

impl Credentials for Resend {
    fn token(headers: &HeaderMap) -> Option<String> {
        bearer(headers).ok().map(str::to_string)
    }

    fn sends_one(method: &Method, path: &str) -> bool {
        method == Method::POST && path.trim_end_matches('/') == "/emails"
    }

    fn error(err: ServiceError) -> Response {
        errors::error(err)
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/emails", post(routes::send).get(routes::list))
        .route("/emails/", post(routes::send).get(routes::list))
        .route("/emails/batch", post(routes::send_batch))
        .route("/emails/batch/", post(routes::send_batch))
        .route("/emails/{id}", get(routes::show).patch(routes::update))
        .route("/emails/{id}/cancel", post(routes::cancel))
        .route("/domains", post(domains::create).get(domains::list))
        .route("/domains/", post(domains::create).get(domains::list))
        .route(
            "/domains/{id}",
            get(domains::show)
                .patch(domains::update)
                .delete(domains::remove),
        )
        .route("/domains/{id}/verify", post(domains::verify))
}
