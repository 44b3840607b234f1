//! The one error type of the application layer. Each variant is a *kind* a transport can
//! switch on (the HTTP surface answers problem+json with a stable `code`, the providers'
//! routes their own names, the console a page, SMTP a reply code); the text is for people.

use std::time::Duration;

use axum::http::StatusCode;

pub use crate::domain::FieldError;
use crate::{
    domain::Scope, ratelimit::Refusal, submission::SubmissionError, templates::TemplateError,
};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// A body that is not JSON at all (a shape error is `Validation`).
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unauthorized(AuthFailure),
    #[error("this API key lacks the `{}` scope", .0.as_str())]
    ForbiddenScope(Scope),
    /// A caller who is who it says, asking for more than it may: a route of the operator's
    /// with a key, a key that would grant more than it holds. `errors` names each field
    /// that asks too much, when the refusal is about fields.
    #[error("{detail}")]
    Forbidden {
        kind: Forbidden,
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A stored template that does not exist: a missing resource on the template routes, a
    /// bad `template` field on a send (`in_request`).
    #[error("{}", template_missing(.name, *.in_request))]
    TemplateNotFound { name: String, in_request: bool },
    /// A 422 with its own kind: a template that does not render, content the policy refused.
    #[error("{}", describe_fields(.errors))]
    Unprocessable {
        kind: Unprocessable,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{}", refusal_detail(.0))]
    Refused(Refusal),
    #[error("too many failed authentications from this address; retry in {} s", wait_secs(*.0))]
    AuthThrottled(Duration),
    #[error("{detail}")]
    Conflict { kind: Conflict, detail: String },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Why a caller is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials where the transport carries them (`expected` names that place).
    Missing { expected: &'static str },
    /// An `Authorization` header that is not text.
    MalformedHeader,
    /// An `Authorization` header of another scheme, or an empty token.
    NotBearer,
    /// A token that is not shaped like an API key.
    InvalidKey,
    /// A well-formed key that is unknown or revoked.
    UnknownKey,
    /// An operator token, while no operator secret is configured.
    OperatorDisabled,
    /// An operator token that does not verify (why).
    InvalidOperatorToken(String),
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthFailure::Missing { expected } => write!(f, "missing {expected}"),
            AuthFailure::MalformedHeader => f.write_str("malformed Authorization header"),
            AuthFailure::NotBearer => f.write_str("expected Authorization: Bearer <api key>"),
            AuthFailure::InvalidKey => f.write_str("invalid API key"),
            AuthFailure::UnknownKey => f.write_str("invalid or revoked API key"),
            AuthFailure::OperatorDisabled => {
                f.write_str("operator access is disabled: MAILGATE_JWT_SECRET is not set")
            }
            AuthFailure::InvalidOperatorToken(why) => write!(f, "invalid operator token: {why}"),
        }
    }
}

/// The kinds of 422 that are not a field's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unprocessable {
    TemplateRender,
    ContentRejected,
}

impl Unprocessable {
    pub fn code(self) -> &'static str {
        match self {
            Unprocessable::TemplateRender => "template_render_error",
            Unprocessable::ContentRejected => "content_rejected",
        }
    }
}

/// The kinds of 403 beyond a missing scope: what the caller may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// A route only the operator may call, asked with a project key.
    OperatorOnly,
    /// A route that acts in one project, asked with the operator's token.
    KeyOnly,
    /// A key granting scopes it does not hold, or managing a key that holds them.
    ExceedsOwnScopes,
    /// A key granting send limits above its own or the configured defaults.
    ExceedsOwnLimits,
    /// A test key creating a live key, or managing one.
    TestKeyOnly,
    /// Mail from a domain that is not a verified sending domain of the project, while
    /// `domains.require_verified` is on.
    DomainNotVerified,
}

impl Forbidden {
    pub fn code(self) -> &'static str {
        match self {
            Forbidden::OperatorOnly => "operator_only",
            Forbidden::KeyOnly => "key_only",
            Forbidden::ExceedsOwnScopes => "exceeds_own_scopes",
            Forbidden::ExceedsOwnLimits => "exceeds_own_limits",
            Forbidden::TestKeyOnly => "test_key_only",
            Forbidden::DomainNotVerified => "domain_not_verified",
        }
    }
}

/// The kinds of 409: what the request collides with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The Idempotency-Key was used with another request.
    IdempotencyMismatch,
    /// The first request with this Idempotency-Key is still running.
    IdempotencyInProgress,
    NotCancellable,
    /// Rescheduling a message none of whose recipients is still scheduled.
    NotScheduled,
    NotHeld,
    TemplateExists,
    TemplateInUse,
    ProjectExists,
    WebhookDisabled,
    DeliveryInProgress,
    DomainExists,
    /// A DKIM rotation while the previous one has not switched yet.
    RotationPending,
}

impl Conflict {
    pub fn code(self) -> &'static str {
        match self {
            Conflict::IdempotencyMismatch | Conflict::IdempotencyInProgress => {
                "idempotency_conflict"
            }
            Conflict::NotCancellable => "not_cancellable",
            Conflict::NotScheduled => "not_scheduled",
            Conflict::NotHeld => "not_held",
            Conflict::TemplateExists => "template_exists",
            Conflict::TemplateInUse => "template_in_use",
            Conflict::ProjectExists => "project_exists",
            Conflict::WebhookDisabled => "webhook_disabled",
            Conflict::DeliveryInProgress => "delivery_in_progress",
            Conflict::DomainExists => "domain_exists",
            Conflict::RotationPending => "rotation_pending",
        }
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(err: sqlx::Error) -> Self {
        // A database that cannot be reached is an outage, not a bug: say so and let clients
        // retry.
        if crate::store::is_outage(&err) {
            tracing::warn!(error = %err, "database unavailable");
            return ServiceError::Unavailable("the database is unavailable; retry later".into());
        }
        ServiceError::Internal(anyhow::Error::new(err).context("database error"))
    }
}

impl From<Refusal> for ServiceError {
    fn from(refusal: Refusal) -> Self {
        ServiceError::Refused(refusal)
    }
}

impl From<TemplateError> for ServiceError {
    fn from(err: TemplateError) -> Self {
        match err {
            TemplateError::NotFound(name) => ServiceError::TemplateNotFound {
                name,
                in_request: false,
            },
            TemplateError::Exists(name) => ServiceError::Conflict {
                kind: Conflict::TemplateExists,
                detail: format!("a template named `{name}` already exists; use PUT to replace it"),
            },
            TemplateError::Invalid(errors) => ServiceError::Validation(errors),
            TemplateError::Render(error) => {
                ServiceError::unprocessable(Unprocessable::TemplateRender, vec![error])
            }
            TemplateError::Database(e) => e.into(),
            TemplateError::Internal(e) => ServiceError::Internal(e),
        }
    }
}

impl From<SubmissionError> for ServiceError {
    fn from(err: SubmissionError) -> Self {
        match err {
            SubmissionError::Validation(errors) => ServiceError::Validation(errors),
            // On a send, an unknown template is a bad field of the request, not a missing
            // route.
            SubmissionError::TemplateNotFound(name) => ServiceError::TemplateNotFound {
                name,
                in_request: true,
            },
            SubmissionError::TemplateRender(error) => {
                ServiceError::unprocessable(Unprocessable::TemplateRender, vec![error])
            }
            SubmissionError::TooLarge(detail) => ServiceError::PayloadTooLarge(detail),
            too_large @ SubmissionError::RequestTooLarge { .. } => {
                ServiceError::PayloadTooLarge(too_large.to_string())
            }
            SubmissionError::ContentRejected { detail, .. } => ServiceError::unprocessable(
                Unprocessable::ContentRejected,
                vec![FieldError::new("body", detail)],
            ),
            SubmissionError::ScanUnavailable(_) => ServiceError::Unavailable(
                "the content scanner is unavailable and the policy fails closed; retry later"
                    .into(),
            ),
            SubmissionError::DomainNotVerified(domain) => ServiceError::Forbidden {
                kind: Forbidden::DomainNotVerified,
                detail: SubmissionError::DomainNotVerified(domain.clone()).to_string(),
                errors: vec![FieldError::new(
                    "from",
                    format!("{domain} is not a verified sending domain of this project"),
                )],
            },
            SubmissionError::Database(e) => e.into(),
            SubmissionError::Internal(e) => ServiceError::Internal(e),
        }
    }
}

impl ServiceError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn unprocessable(kind: Unprocessable, errors: Vec<FieldError>) -> Self {
        ServiceError::Unprocessable { kind, errors }
    }

    pub fn forbidden(kind: Forbidden, detail: impl Into<String>) -> Self {
        ServiceError::Forbidden {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn conflict(kind: Conflict, detail: impl Into<String>) -> Self {
        ServiceError::Conflict {
            kind,
            detail: detail.into(),
        }
    }

    /// The field errors a client should fix, when the error is about fields.
    pub fn field_errors(&self) -> Option<Vec<FieldError>> {
        match self {
            ServiceError::Validation(errors) | ServiceError::Unprocessable { errors, .. } => {
                Some(errors.clone())
            }
            ServiceError::Forbidden { errors, .. } if !errors.is_empty() => Some(errors.clone()),
            ServiceError::TemplateNotFound {
                name,
                in_request: true,
            } => Some(vec![FieldError::new(
                "template",
                format!("no template named `{name}` in this project"),
            )]),
            _ => None,
        }
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Validation(_) => "validation_error",
            ServiceError::MalformedJson(_) => "malformed_json",
            ServiceError::UnsupportedMediaType(_) => "unsupported_media_type",
            ServiceError::Unauthorized(_) => "unauthorized",
            ServiceError::ForbiddenScope(_) => "forbidden_scope",
            ServiceError::Forbidden { kind, .. } => kind.code(),
            ServiceError::NotFound(_) => "not_found",
            ServiceError::TemplateNotFound { .. } => "template_not_found",
            ServiceError::Unprocessable { kind, .. } => kind.code(),
            ServiceError::PayloadTooLarge(_) => "payload_too_large",
            ServiceError::Conflict { kind, .. } => kind.code(),
            ServiceError::Unavailable(_) | ServiceError::Refused(Refusal::Unavailable) => {
                "unavailable"
            }
            ServiceError::Refused(Refusal::QuotaExceeded { .. }) => "quota_exceeded",
            ServiceError::Refused(_) | ServiceError::AuthThrottled(_) => "rate_limited",
            ServiceError::Internal(_) => "internal_error",
        }
    }

    /// Seconds a client should wait before trying again, when waiting helps.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ServiceError::Refused(Refusal::RateLimited(d)) => d.retry_after_secs(),
            ServiceError::Refused(Refusal::QuotaExceeded { decision, .. }) => {
                decision.retry_after_secs()
            }
            // Redis is retried about once a second.
            ServiceError::Refused(Refusal::Unavailable) => Some(1),
            ServiceError::AuthThrottled(wait) => Some(wait_secs(*wait)),
            _ => None,
        }
    }

    /// The rate-limit decision behind a refusal, for the `RateLimit-*` headers.
    pub fn decision(&self) -> Option<&crate::ratelimit::Decision> {
        match self {
            ServiceError::Refused(Refusal::RateLimited(d)) => Some(d),
            ServiceError::Refused(Refusal::QuotaExceeded { decision, .. }) => Some(decision),
            _ => None,
        }
    }
}

impl ServiceError {
    /// What a client is told: an internal error is logged here, once, with its cause chain,
    /// and told as an opaque message.
    pub fn public_detail(&self) -> String {
        let detail = match self {
            ServiceError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                "an internal error occurred".to_string()
            }
            ServiceError::Validation(errors) if errors.len() == 1 => {
                format!("{}: {}", errors[0].field, errors[0].message)
            }
            other => other.to_string(),
        };
        // Details may echo input; keep them storable and printable.
        detail.replace('\0', "\u{fffd}")
    }

    /// The HTTP status of each kind (the API and the console answer with it).
    pub fn status_code(&self) -> StatusCode {
        match self {
            ServiceError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ServiceError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServiceError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ServiceError::ForbiddenScope(_) | ServiceError::Forbidden { .. } => {
                StatusCode::FORBIDDEN
            }
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::TemplateNotFound { in_request, .. } => {
                if *in_request {
                    StatusCode::UNPROCESSABLE_ENTITY
                } else {
                    StatusCode::NOT_FOUND
                }
            }
            ServiceError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceError::Conflict { .. } => StatusCode::CONFLICT,
            ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Refused(Refusal::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Refused(_) | ServiceError::AuthThrottled(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn template_missing(name: &str, in_request: bool) -> String {
    if in_request {
        format!("template: no template named `{name}` in this project")
    } else {
        format!("template `{name}` not found")
    }
}

fn refusal_detail(refusal: &Refusal) -> String {
    match refusal {
        Refusal::RateLimited(d) => format!(
            "rate limit exceeded ({} {} at most, refilled at {}); retry in {} s",
            d.limit,
            match d.params.class {
                crate::ratelimit::Class::Send => "messages",
                crate::ratelimit::Class::Api | crate::ratelimit::Class::Tracking => "requests",
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
fn wait_secs(wait: Duration) -> u64 {
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

/// "field: message" for one error, "field: message; field: message" for several.
fn describe_fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}
