//! SendGrid's errors: the body `{"errors": [{"message", "field", "help"}]}` with one entry per
//! bad field, named as SendGrid names it (a personalization's fields under
//! `personalizations.N`); the statuses, by which the SDKs raise; and every error
//! `/v3/mail/send` answers, for the spec.

use axum::{http::StatusCode, response::Response};
use serde::Serialize;

use super::super::shared::{ErrorResponses, Errors, reshape, same_name, status_of};
use crate::api::error::{FieldError, ServiceError};

/// SendGrid's name for a native field path inside personalization `i`.
fn field_in(i: usize, native: &str) -> String {
    let split = native.find(['.', '[']).unwrap_or(native.len());
    let (head, rest) = native.split_at(split);
    // `to[1]` is `to.1`, as SendGrid writes paths.
    let rest = rest.replace('[', ".").replace(']', "");
    match head {
        "to" | "cc" | "bcc" => format!("personalizations.{i}.{head}{rest}"),
        "variables" => format!("personalizations.{i}.dynamic_template_data{rest}"),
        "html" | "text" => "content".into(),
        "tags" => format!("categories{rest}"),
        "metadata" => format!("custom_args{rest}"),
        "template" => "template_id".into(),
        other => format!("{other}{rest}"),
    }
}

/// SendGrid answers a body that is not JSON with 415; otherwise as [`status_of`].
fn status(err: &ServiceError) -> StatusCode {
    match err {
        ServiceError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => status_of(err),
    }
}

/// SendGrid's error body: one entry per bad field.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = SendGridErrors)]
pub struct ErrorBody {
    pub errors: Vec<ErrorItem>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = SendGridError)]
pub struct ErrorItem {
    pub message: String,
    pub field: Option<String>,
    pub help: Option<String>,
}

/// An error as SendGrid answers it. With `Some(i)`, its fields are native paths of
/// personalization `i`'s message and are named as SendGrid names them; otherwise they are
/// named already.
pub fn error_at(at: Option<usize>, err: ServiceError) -> Response {
    let fields: Option<Vec<FieldError>> = err.field_errors();
    reshape(err, same_name, |err, message| {
        let errors = match fields {
            Some(list) => list
                .into_iter()
                .map(|e| ErrorItem {
                    field: Some(match at {
                        Some(i) => field_in(i, &e.field),
                        None => e.field,
                    }),
                    message: e.message,
                    help: None,
                })
                .collect(),
            None => vec![ErrorItem {
                message: match err {
                    ServiceError::Unauthorized(_) => {
                        "The provided authorization grant is invalid, expired, or revoked".into()
                    }
                    _ => message,
                },
                field: None,
                help: None,
            }],
        };
        (
            status(err),
            serde_json::to_value(ErrorBody { errors }).unwrap_or_default(),
        )
    })
}

pub fn error(err: ServiceError) -> Response {
    error_at(None, err)
}

/// Every error `/v3/mail/send` answers, in SendGrid's shape.
pub type SendGridErrors = Errors<ErrorBody>;

impl ErrorResponses for ErrorBody {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (400, "Invalid fields, each named"),
        (401, "Missing, unknown or revoked key"),
        (403, "The key lacks the `send` scope"),
        (413, "Too large"),
        (415, "Not JSON"),
        (429, "Rate limit or quota"),
        (503, "Database or rate limiter unavailable"),
    ];
}
