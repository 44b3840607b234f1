//! How the HTTP surface answers a [`ServiceError`]: RFC 9457 problem+json with the error
//! kind's stable `code`, and its HTTP status.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::IntoResponses;

use crate::ratelimit::Refusal;
pub use crate::service::error::{FieldError, ServiceError, ServiceResult};

/// The RFC 9457 body of every error answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, machine-readable: switch on this, not on the text.
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Seconds to wait, as in `Retry-After` (429 and some 503s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// When an exhausted quota is full again (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_at: Option<String>,
}

impl ServiceError {
    /// The problem body; an internal error is logged here, once, with its cause chain.
    pub fn to_problem(&self) -> Problem {
        let status = self.status_code();
        let detail = self.public_detail();
        let code = self.code();
        Problem {
            kind: format!("urn:mailgate:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            code: code.to_string(),
            errors: self.field_errors().map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        FieldError::new(
                            e.field.replace('\0', "\u{fffd}"),
                            e.message.replace('\0', "\u{fffd}"),
                        )
                    })
                    .collect()
            }),
            retry_after: self.retry_after(),
            reset_at: match self {
                ServiceError::Refused(Refusal::QuotaExceeded { resets_at, .. }) => {
                    Some(resets_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                }
                _ => None,
            },
        }
    }
}

/// A JSON answer with the right content type: problem+json for errors.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if status.is_client_error() || status.is_server_error() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
    }
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let problem = self.to_problem();
        let body = serde_json::to_value(&problem).unwrap_or_default();
        let mut response = json_response(self.status_code(), &body);
        if let Some(decision) = self.decision() {
            super::headers::write_headers(decision, response.headers_mut());
        }
        if let Some(secs) = problem.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Every error a route may answer, as problem+json with a stable `code`.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ProblemResponses {
    #[response(
        status = 400,
        description = "Malformed JSON (`malformed_json`)",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    #[response(
        status = 401,
        description = "Missing, invalid or revoked credentials (`unauthorized`)",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "The key lacks the route's scope (`forbidden_scope`), the route is the operator's (`operator_only`) or a project key's (`key_only`), or a key would grant more than it holds (`exceeds_own_scopes`, `exceeds_own_limits`, `test_key_only`)",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    #[response(
        status = 404,
        description = "Not found, or another project's (`not_found`)",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    #[response(
        status = 409,
        description = "Conflict (`idempotency_conflict`, `not_cancellable`, `not_scheduled`, `project_exists`)",
        content_type = "application/problem+json"
    )]
    Conflict(Problem),
    #[response(
        status = 413,
        description = "Body or message too large (`payload_too_large`)",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    #[response(
        status = 415,
        description = "Not a JSON body (`unsupported_media_type`)",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
    #[response(
        status = 422,
        description = "Invalid fields, each named in `errors` (`validation_error`)",
        content_type = "application/problem+json"
    )]
    Unprocessable(Problem),
    #[response(
        status = 429,
        description = "Over the key's rate limit (`rate_limited`) or daily quota (`quota_exceeded`); see `Retry-After` and the `RateLimit-*` headers",
        content_type = "application/problem+json"
    )]
    TooManyRequests(Problem),
    #[response(
        status = 503,
        description = "The database is unavailable; retry (`unavailable`)",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}
