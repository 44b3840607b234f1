//! Mailgun's errors: `{"message"}` with the common statuses, but a bad key is the plain-text
//! `Forbidden` (mailgun.js turns either into its `APIError`, mailgun-python returns it as the
//! response); and every error a Mailgun route answers, for the spec.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

use super::super::shared::{ErrorResponses, Errors, reshape, same_name, status_of};
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
pub type MailgunErrors = Errors<ErrorBody>;

impl ErrorResponses for ErrorBody {
    /// A bad key is the plain-text `Forbidden`.
    const PLAIN_TEXT: &'static [u16] = &[401];
    const STATUSES: &'static [(u16, &'static str)] = &[
        (400, "Invalid fields, or not a form"),
        (
            401,
            "Missing, unknown or revoked key (plain text `Forbidden`)",
        ),
        (403, "The key lacks the `send` scope"),
        (413, "Too large"),
        (429, "Rate limit or quota"),
        (503, "Database or rate limiter unavailable"),
    ];
}
