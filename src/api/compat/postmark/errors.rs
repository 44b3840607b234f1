//! Postmark's errors: the body `{"ErrorCode", "Message"}`, the status and `ErrorCode` of each
//! kind of [`ServiceError`] (the SDKs choose their exception class by the code: 10 bad token,
//! 300 invalid request; and the status: 401, 422, 429), native field paths in Postmark's
//! names, and every error a Postmark route answers, for the spec.

use axum::{http::StatusCode, response::Response};
use serde::Serialize;
use serde_json::json;

use super::super::shared::{ErrorResponses, Errors, describe, reshape};
use crate::{api::error::ServiceError, ratelimit::Refusal, service::error::Forbidden};

/// Postmark's name for a native field path (`to[1]` is `To[1]`).
pub fn field(native: &str) -> String {
    let split = native.find(['.', '[']).unwrap_or(native.len());
    let (head, rest) = native.split_at(split);
    let name = match head {
        "from" => "From",
        "to" => "To",
        "cc" => "Cc",
        "bcc" => "Bcc",
        "reply_to" => "ReplyTo",
        "subject" => "Subject",
        "html" => "HtmlBody",
        "text" => "TextBody",
        "headers" => "Headers",
        "attachments" => "Attachments",
        "tags" => "Tag",
        "metadata" => "Metadata",
        "template" => "TemplateAlias",
        "variables" => "TemplateModel",
        other => other,
    };
    format!("{name}{rest}")
}

/// An error's message as Postmark words it (every bad field, by Postmark's names).
pub fn message(err: &ServiceError) -> String {
    describe(&err.to_problem(), field)
}

/// Postmark's status and `ErrorCode` for an error.
pub fn status_and_code(err: &ServiceError) -> (StatusCode, u16) {
    match err {
        ServiceError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, 300),
        ServiceError::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, 300),
        ServiceError::TemplateNotFound { .. } => (StatusCode::UNPROCESSABLE_ENTITY, 1101),
        // 402: invalid JSON; 409: JSON required.
        ServiceError::MalformedJson(_) => (StatusCode::UNPROCESSABLE_ENTITY, 402),
        ServiceError::UnsupportedMediaType(_) => (StatusCode::UNPROCESSABLE_ENTITY, 409),
        ServiceError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 300),
        // 10: bad or missing server token.
        ServiceError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, 10),
        // 400: sender signature not found (Postmark's word for an unverified From).
        ServiceError::Forbidden {
            kind: Forbidden::DomainNotVerified,
            ..
        } => (StatusCode::UNPROCESSABLE_ENTITY, 400),
        // 405: not allowed to send.
        ServiceError::ForbiddenScope(_) | ServiceError::Forbidden { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, 405)
        }
        ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, 0),
        ServiceError::Conflict { .. } => (StatusCode::CONFLICT, 0),
        ServiceError::Refused(Refusal::Unavailable) | ServiceError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, 0)
        }
        ServiceError::Refused(_) | ServiceError::AuthThrottled(_) => {
            (StatusCode::TOO_MANY_REQUESTS, 429)
        }
        ServiceError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 0),
    }
}

/// An error as Postmark answers it.
pub fn error(err: ServiceError) -> Response {
    reshape(err, field, |err, message| {
        let (status, code) = status_and_code(err);
        (status, json!({"ErrorCode": code, "Message": message}))
    })
}

/// The error as `{ErrorCode, Message}`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = PostmarkError)]
pub struct ErrorBody {
    pub error_code: u16,
    pub message: String,
}

/// Every error a Postmark route answers, in Postmark's shape.
pub type PostmarkErrors = Errors<ErrorBody>;

impl ErrorResponses for ErrorBody {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (401, "Missing or invalid server token (ErrorCode 10)"),
        (413, "Message too large (ErrorCode 300)"),
        (
            422,
            "Invalid request (300), template not found (1101), invalid JSON (402), JSON required (409), key without the `send` scope (405)",
        ),
        (429, "Rate limit or quota (ErrorCode 429)"),
        (503, "Database or rate limiter unavailable"),
    ];
}
