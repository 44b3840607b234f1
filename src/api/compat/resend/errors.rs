//! Resend's errors: the body `{"statusCode", "name", "message"}` (resend-python picks its
//! exception class by the status and `name`, resend-node returns it as `error`), the status
//! and name of each kind of [`ServiceError`], and every error a Resend route answers, for the
//! spec.

use axum::{http::StatusCode, response::Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::super::shared::{ErrorResponses, Errors, describe, reshape, same_name};
use crate::{
    api::error::ServiceError,
    ratelimit::Refusal,
    service::error::{AuthFailure, Conflict, Forbidden},
};

/// The Resend error body: `name` is what resend-python picks the exception class by.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendError)]
#[allow(non_snake_case)]
pub struct ErrorBody {
    pub statusCode: u16,
    pub name: String,
    pub message: String,
}

/// An error as Resend answers it.
pub fn error(err: ServiceError) -> Response {
    reshape(err, same_name, |err, message| {
        let (status, name) = status_and_name(err);
        (status, body(status, name, message))
    })
}

/// A 4xx as the idempotency store keeps it, in Resend's shape; a 429 or 5xx is not kept.
pub fn kept_answer(err: ServiceError) -> Result<(StatusCode, Value), ServiceError> {
    let (status, name) = status_and_name(&err);
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(err);
    }
    let message = message(&err);
    Ok((status, body(status, name, message)))
}

/// An error's message as Resend words it (every bad field, by mailgate's names).
pub fn message(err: &ServiceError) -> String {
    describe(&err.to_problem(), same_name)
}

fn body(status: StatusCode, name: &str, message: String) -> Value {
    json!({"statusCode": status.as_u16(), "name": name, "message": message})
}

fn status_and_name(err: &ServiceError) -> (StatusCode, &'static str) {
    match err {
        ServiceError::Validation(_)
        | ServiceError::Unprocessable { .. }
        | ServiceError::TemplateNotFound { .. }
        | ServiceError::PayloadTooLarge(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_error")
        }
        ServiceError::MalformedJson(_) | ServiceError::UnsupportedMediaType(_) => {
            (StatusCode::BAD_REQUEST, "validation_error")
        }
        ServiceError::Unauthorized(AuthFailure::Missing { .. }) => {
            (StatusCode::UNAUTHORIZED, "missing_api_key")
        }
        ServiceError::Unauthorized(_) => (StatusCode::FORBIDDEN, "invalid_api_key"),
        // Resend refuses an unverified domain with 403 `validation_error`.
        ServiceError::Forbidden {
            kind: Forbidden::DomainNotVerified,
            ..
        } => (StatusCode::FORBIDDEN, "validation_error"),
        ServiceError::ForbiddenScope(_) | ServiceError::Forbidden { .. } => {
            (StatusCode::UNAUTHORIZED, "restricted_api_key")
        }
        ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        ServiceError::Conflict {
            kind: Conflict::IdempotencyInProgress,
            ..
        } => (StatusCode::CONFLICT, "concurrent_idempotent_requests"),
        ServiceError::Conflict {
            kind: Conflict::IdempotencyMismatch,
            ..
        } => (StatusCode::CONFLICT, "invalid_idempotent_request"),
        ServiceError::Conflict { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
        ServiceError::Refused(Refusal::QuotaExceeded { .. }) => {
            (StatusCode::TOO_MANY_REQUESTS, "daily_quota_exceeded")
        }
        ServiceError::Refused(Refusal::Unavailable) | ServiceError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "application_error")
        }
        ServiceError::Refused(_) | ServiceError::AuthThrottled(_) => {
            (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded")
        }
        ServiceError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "application_error"),
    }
}

/// Every error a Resend route answers, in Resend's shape.
pub type ResendErrors = Errors<ErrorBody>;

impl ErrorResponses for ErrorBody {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (400, "Malformed JSON or not JSON (`validation_error`)"),
        (
            401,
            "No key (`missing_api_key`) or no `send` scope (`restricted_api_key`)",
        ),
        (403, "Invalid or revoked key (`invalid_api_key`)"),
        (404, "No such email (`not_found`)"),
        (
            409,
            "Idempotency-Key reused with another body (`invalid_idempotent_request`) or still running (`concurrent_idempotent_requests`)",
        ),
        (422, "Invalid fields (`validation_error`)"),
        (
            429,
            "Rate limit (`rate_limit_exceeded`) or quota (`daily_quota_exceeded`)",
        ),
        (
            503,
            "Database or rate limiter unavailable (`application_error`)",
        ),
    ];
}
