//! Provider-compatible send routes at the root of the HTTP listener, beside `/v1`: an app keeps
//! its provider's official SDK and changes only the base URL and the key.
//!
//! Each provider's file parses that provider's body into the native [`SendRequest`], so a send
//! goes through the same submission core as `POST /v1/emails` (validation, limits, templates,
//! idempotency, suppressions, sandbox, events, webhooks), and answers in the provider's shape:
//! its success bodies, and its error bodies and statuses, which the SDKs turn into their own
//! exception types.
//!
//! Each provider says where its SDKs carry the key ([`Credentials`]), and the one gate
//! (`api::gate`) authenticates, throttles and charges as for `/v1`.
//! - `address`: address lists as providers write them (comma-separated strings).
//! - `resend`, `postmark`, `sendgrid`, `mailgun`: one file per provider.

mod address;
pub mod mailgun;
pub mod postmark;
pub mod resend;
pub mod sendgrid;

use axum::{
    Router,
    body::Bytes,
    extract::rejection::BytesRejection,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
};

use super::{
    AppState,
    error::{Problem, ServiceError},
    extract::{body_error, check_json_content_type},
    gate::{Credentials, layer},
};
use crate::ratelimit::Refusal;

/// Names the request fields mailgate accepted but does not act on (`X-Mailgate-Ignored:
/// TrackOpens, MessageStream`), so nothing is dropped without a word.
pub const IGNORED_HEADER: HeaderName = HeaderName::from_static("x-mailgate-ignored");

pub fn router(state: AppState) -> Router<AppState> {
    fn gated<C: Credentials + 'static>(
        routes: Router<AppState>,
        state: &AppState,
    ) -> Router<AppState> {
        routes.route_layer(middleware::from_fn_with_state(state.clone(), layer::<C>))
    }
    Router::new()
        .merge(gated::<resend::Resend>(resend::router(), &state))
        .merge(gated::<postmark::Postmark>(postmark::router(), &state))
        .merge(gated::<sendgrid::SendGrid>(sendgrid::router(), &state))
        .merge(gated::<mailgun::Mailgun>(mailgun::router(), &state))
}

/// A JSON answer as the providers send it: `application/json` even for errors (resend-python
/// refuses any other content type, `application/problem+json` included).
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Adds the ignored-fields warning header when there are any.
pub(crate) fn warn_ignored(response: &mut Response, ignored: &[String]) {
    if ignored.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&ignored.join(", ")) {
        response.headers_mut().insert(IGNORED_HEADER, value);
    }
}

/// The body of a JSON request, with the same content-type and size checks as `/v1`.
pub(crate) fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ServiceError> {
    check_json_content_type(headers)?;
    body.map_err(body_error)
}

/// An error in a provider's shape. `shape` picks the status and body from the error and its
/// message (every bad field, named as the provider names it by `field`); the answer keeps the
/// native one's `Retry-After` and `RateLimit-*` headers, which the SDKs expose.
pub(crate) fn reshape(
    err: ServiceError,
    field: fn(&str) -> String,
    shape: impl FnOnce(&ServiceError, String) -> (StatusCode, serde_json::Value),
) -> Response {
    let problem = err.to_problem();
    let message = describe(&problem, field);
    let (status, body) = shape(&err, message);
    let mut response = json(status, &body);
    if let Some(secs) = problem.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let ServiceError::Refused(
        Refusal::RateLimited(decision) | Refusal::QuotaExceeded { decision, .. },
    ) = &err
    {
        super::headers::write_headers(decision, response.headers_mut());
    }
    response
}

/// A problem's message as a provider shows it: every bad field, named by `field`, or the
/// detail.
pub(crate) fn describe(problem: &Problem, field: fn(&str) -> String) -> String {
    match &problem.errors {
        Some(errors) if !errors.is_empty() => errors
            .iter()
            .map(|e| format!("{}: {}", field(&e.field), e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => problem.detail.clone(),
    }
}

/// A provider's open and click tracking flags as a send's `track`; `None` when it gives
/// neither, so the project's defaults apply.
pub(crate) fn track(opens: Option<bool>, clicks: Option<bool>) -> Option<crate::domain::Track> {
    (opens.is_some() || clicks.is_some()).then_some(crate::domain::Track { opens, clicks })
}

/// The names among `fields` that `body` gives (not null): accepted and not acted on.
pub(crate) fn ignored_in(body: &serde_json::Value, fields: &[&str]) -> Vec<String> {
    fields
        .iter()
        .filter(|f| body.get(**f).is_some_and(|v| !v.is_null()))
        .map(|f| f.to_string())
        .collect()
}

/// A batch body as the spec shows it: up to `max` items, each an `item` schema or, since
/// items are checked one by one and a bad one gets its own result, any other JSON value.
pub(crate) fn batch_schema(
    item: &str,
    max: usize,
) -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::openapi::{
        Ref,
        schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType},
    };
    let item = AnyOfBuilder::new()
        .item(Ref::from_schema_name(item))
        .item(ObjectBuilder::new().schema_type(SchemaType::AnyValue));
    ArrayBuilder::new()
        .items(item)
        .min_items(Some(1))
        .max_items(Some(max))
        .into()
}
