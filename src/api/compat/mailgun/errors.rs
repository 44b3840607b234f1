//! Mailgun's errors: `{"message"}` with the common statuses, but a bad key is the plain-text
//! `Forbidden` (mailgun.js turns either into its `APIError`, mailgun-python returns it as the
//! response); and every error a Mailgun route answers, for the spec.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

use super::super::shared::{reshape, same_name, status_of};
use crate::api::error::ServiceError;

/// An error as Mailgun answers it: `{"message"}`, but a bad key is the plain-text
/// `Forbidden`.
pub fn error(err: ServiceError) -> Response {
    if matches!(err, ServiceError::Unauthorized(_)) {
        let mut response = (StatusCode::UNAUTHORIZED, "Forbidden").into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return response;
    }
    reshape(err, same_name, |err, message| {
        (status_of(err), json!({"message": message}))
    })
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = MailgunError)]
pub struct ErrorBody {
    pub message: String,
}

/// Every error a Mailgun route answers, in Mailgun's shape.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum MailgunErrors {
    #[response(status = 400, description = "Invalid fields, or not a form")]
    BadRequest(ErrorBody),
    #[response(
        status = 401,
        description = "Missing, unknown or revoked key (plain text `Forbidden`)",
        content_type = "text/plain"
    )]
    Unauthorized(String),
    #[response(status = 403, description = "The key lacks the `send` scope")]
    Forbidden(ErrorBody),
    #[response(status = 413, description = "Too large")]
    TooLarge(ErrorBody),
    #[response(status = 429, description = "Rate limit or quota")]
    TooManyRequests(ErrorBody),
    #[response(status = 503, description = "Database or rate limiter unavailable")]
    Unavailable(ErrorBody),
}
