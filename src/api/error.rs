//! The one error type of the HTTP surface, answered as RFC 9457 problem+json with a stable `code`.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::ratelimit::Refusal;

/// One invalid field of a request, named by its JSON path (`to[1]`, `headers.X-Foo`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

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
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{0}")]
    Unavailable(String),
    #[error("{}", refusal_detail(.0))]
    Refused(Refusal),
    #[error("too many failed authentications from this address; retry in {} s", wait_secs(*.0))]
    AuthThrottled(std::time::Duration),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            // A pool that cannot connect is an outage, not a bug: say so and let clients retry.
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(error = %err, "database unavailable");
                ApiError::Unavailable("the database is unavailable; retry later".into())
            }
            other => ApiError::Internal(anyhow::Error::new(other).context("database error")),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        ApiError::Refused(refusal)
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

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::ForbiddenScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
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
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Conflict { code, .. } => code,
            ApiError::Unavailable(_) | ApiError::Refused(Refusal::Unavailable) => "unavailable",
            ApiError::Refused(Refusal::QuotaExceeded { .. }) => "quota_exceeded",
            ApiError::Refused(_) | ApiError::AuthThrottled(_) => "rate_limited",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    /// Seconds to wait, as in `Retry-After` (429 and some 503s).
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    /// When an exhausted quota is full again (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_at: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            // The cause chain goes to the log once; the client gets an opaque message.
            ApiError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                "an internal error occurred".to_string()
            }
            ApiError::Validation(errors) if errors.len() == 1 => {
                format!("{}: {}", errors[0].field, errors[0].message)
            }
            other => other.to_string(),
        };
        let errors = match &self {
            ApiError::Validation(errors) => Some(errors.as_slice()),
            _ => None,
        };
        let code = self.code();
        let (decision, retry_after) = match &self {
            ApiError::Refused(Refusal::RateLimited(d)) => (Some(d), d.retry_after_secs()),
            ApiError::Refused(Refusal::QuotaExceeded { decision, .. }) => {
                (Some(decision), decision.retry_after_secs())
            }
            // Redis is retried about once a second.
            ApiError::Refused(Refusal::Unavailable) => (None, Some(1)),
            ApiError::AuthThrottled(wait) => (None, Some(wait_secs(*wait))),
            _ => (None, None),
        };
        let reset_at = match &self {
            ApiError::Refused(Refusal::QuotaExceeded { resets_at, .. }) => {
                Some(resets_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }
            _ => None,
        };
        let body = Problem {
            kind: format!("urn:mailgate:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code,
            errors,
            retry_after,
            reset_at,
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(decision) = decision {
            super::limits::write_headers(decision, response.headers_mut());
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
