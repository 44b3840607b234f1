//! The one error type of the HTTP surface, answered as RFC 9457 problem+json with a stable `code`.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

pub use crate::domain::FieldError;
use crate::{ratelimit::Refusal, submission::SubmissionError, templates::TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("this API key lacks the `{0}` scope")]
    ForbiddenScope(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("template `{0}` not found")]
    TemplateNotFound(String),
    /// A 422 with its own code (`template_not_found` on send, `template_render_error`).
    #[error("{}", describe_fields(.errors))]
    Unprocessable {
        code: &'static str,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{}", refusal_detail(.0))]
    Refused(Refusal),
    #[error("too many failed authentications from this address; retry in {} s", wait_secs(*.0))]
    AuthThrottled(std::time::Duration),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        // A database that cannot be reached is an outage, not a bug: say so and let clients
        // retry.
        if crate::store::is_outage(&err) {
            tracing::warn!(error = %err, "database unavailable");
            return ApiError::Unavailable("the database is unavailable; retry later".into());
        }
        ApiError::Internal(anyhow::Error::new(err).context("database error"))
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        ApiError::Refused(refusal)
    }
}

impl From<TemplateError> for ApiError {
    fn from(err: TemplateError) -> Self {
        match err {
            TemplateError::NotFound(name) => ApiError::TemplateNotFound(name),
            TemplateError::Exists(name) => ApiError::Conflict {
                code: "template_exists",
                detail: format!("a template named `{name}` already exists; use PUT to replace it"),
            },
            TemplateError::Invalid(errors) => ApiError::Validation(errors),
            TemplateError::Render(error) => {
                ApiError::unprocessable("template_render_error", vec![error])
            }
            TemplateError::Database(e) => e.into(),
            TemplateError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<SubmissionError> for ApiError {
    fn from(err: SubmissionError) -> Self {
        match err {
            SubmissionError::Validation(errors) => ApiError::Validation(errors),
            // On a send, an unknown template is a bad field of the request, not a missing
            // route.
            SubmissionError::TemplateNotFound(name) => ApiError::unprocessable(
                "template_not_found",
                vec![FieldError::new(
                    "template",
                    format!("no template named `{name}` in this project"),
                )],
            ),
            SubmissionError::TemplateRender(error) => {
                ApiError::unprocessable("template_render_error", vec![error])
            }
            SubmissionError::TooLarge(detail) => ApiError::PayloadTooLarge(detail),
            SubmissionError::ContentRejected { detail, .. } => {
                ApiError::unprocessable("content_rejected", vec![FieldError::new("body", detail)])
            }
            SubmissionError::ScanUnavailable(_) => ApiError::Unavailable(
                "the content scanner is unavailable and the policy fails closed; retry later"
                    .into(),
            ),
            SubmissionError::Database(e) => e.into(),
            SubmissionError::Internal(e) => ApiError::Internal(e),
        }
    }
}

fn refusal_detail(refusal: &Refusal) -> String {
    match refusal {
        Refusal::RateLimited(d) => format!(
            "rate limit exceeded ({} {} at most, refilled at {}); retry in {} s",
            d.limit,
            match d.params.class {
                crate::ratelimit::Class::Send => "messages",
                crate::ratelimit::Class::Api => "requests",
            },
            per_second(d.params.interval_us),
            d.retry_after_secs().unwrap_or(1)
        ),
        Refusal::QuotaExceeded {
            decision,
            resets_at,
        } => format!(
            "this key's quota of {} messages per {} is used up ({} left); it resets at {}",
            decision.limit,
            match decision.params.quota_period_secs {
                86_400 => "day".to_string(),
                secs => format!("{secs} s"),
            },
            decision.remaining,
            resets_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        Refusal::TooLarge { units, burst } => format!(
            "{units} messages at once exceed this key's burst of {burst}; send at most {burst} at a time"
        ),
        Refusal::Unavailable => "rate limits cannot be checked right now; retry later".into(),
    }
}

/// Whole seconds, rounded up and at least 1, as `Retry-After` wants them.
fn wait_secs(wait: std::time::Duration) -> u64 {
    (wait.as_millis().div_ceil(1000) as u64).max(1)
}

fn per_second(interval_us: u64) -> String {
    let rate = 1_000_000.0 / interval_us as f64;
    if rate >= 1.0 {
        format!("{} per second", (rate * 100.0).round() / 100.0)
    } else {
        format!(
            "one per {} s",
            (interval_us as f64 / 1e6 * 10.0).round() / 10.0
        )
    }
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn unprocessable(code: &'static str, errors: Vec<FieldError>) -> Self {
        ApiError::Unprocessable { code, errors }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::ForbiddenScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::TemplateNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Refused(Refusal::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Refused(_) | ApiError::AuthThrottled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_error",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::ForbiddenScope(_) => "forbidden_scope",
            ApiError::NotFound(_) => "not_found",
            ApiError::TemplateNotFound(_) => "template_not_found",
            ApiError::Unprocessable { code, .. } => code,
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Conflict { code, .. } => code,
            ApiError::Unavailable(_) | ApiError::Refused(Refusal::Unavailable) => "unavailable",
            ApiError::Refused(Refusal::QuotaExceeded { .. }) => "quota_exceeded",
            ApiError::Refused(_) | ApiError::AuthThrottled(_) => "rate_limited",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

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

impl ApiError {
    /// The problem body; an internal error is logged here, once, with its cause chain.
    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            // The client gets an opaque message; the log gets the details.
            ApiError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                "an internal error occurred".to_string()
            }
            ApiError::Validation(errors) if errors.len() == 1 => {
                format!("{}: {}", errors[0].field, errors[0].message)
            }
            other => other.to_string(),
        };
        // Details may echo input; keep them storable and printable.
        let detail = detail.replace('\0', "\u{fffd}");
        let code = self.code();
        Problem {
            kind: format!("urn:mailgate:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            code: code.to_string(),
            errors: match self {
                ApiError::Validation(errors) | ApiError::Unprocessable { errors, .. } => Some(
                    errors
                        .iter()
                        .map(|e| {
                            FieldError::new(
                                e.field.replace('\0', "\u{fffd}"),
                                e.message.replace('\0', "\u{fffd}"),
                            )
                        })
                        .collect(),
                ),
                _ => None,
            },
            retry_after: self.retry_after(),
            reset_at: match self {
                ApiError::Refused(Refusal::QuotaExceeded { resets_at, .. }) => {
                    Some(resets_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                }
                _ => None,
            },
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Refused(Refusal::RateLimited(d)) => d.retry_after_secs(),
            ApiError::Refused(Refusal::QuotaExceeded { decision, .. }) => {
                decision.retry_after_secs()
            }
            // Redis is retried about once a second.
            ApiError::Refused(Refusal::Unavailable) => Some(1),
            ApiError::AuthThrottled(wait) => Some(wait_secs(*wait)),
            _ => None,
        }
    }

    pub fn status_code(&self) -> StatusCode {
        self.status()
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.to_problem();
        let body = serde_json::to_value(&problem).unwrap_or_default();
        let mut response = json_response(self.status(), &body);
        let decision = match &self {
            ApiError::Refused(Refusal::RateLimited(d)) => Some(d),
            ApiError::Refused(Refusal::QuotaExceeded { decision, .. }) => Some(decision),
            _ => None,
        };
        if let Some(decision) = decision {
            super::limits::write_headers(decision, response.headers_mut());
        }
        if let Some(secs) = problem.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// "field: message" for one error, "field: message; field: message" for several.
fn describe_fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

pub type ApiResult<T> = Result<T, ApiError>;
