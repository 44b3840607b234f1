//! What every provider's routes answer with, whatever the provider: JSON bodies with the
//! content type the SDKs want, the `X-Mailgate-Ignored` warning, the `RateLimit-*` headers of
//! a charge, an error reshaped into the provider's body (keeping the native headers), and the
//! status most providers give each kind of [`ServiceError`]. Reading a JSON body with the
//! native checks, tracking flags and attachments given as bytes are here too.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    api::{
        AppState,
        auth::ProjectKey,
        email_request::{AttachmentRequest, Base64Content},
        error::{Problem, ServiceError},
        extract::{body_error, check_json_content_type},
        headers::write_headers,
    },
    ratelimit::{Decision, Refusal},
    store::api_keys::AuthenticatedKey,
};

/// Names the request fields mailgate accepted but does not act on (`X-Mailgate-Ignored:
/// TrackOpens, MessageStream`), so nothing is dropped without a word.
pub const IGNORED_HEADER: HeaderName = HeaderName::from_static("x-mailgate-ignored");

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

/// A provider's success body as [`json`], with the ignored-fields warning.
pub(crate) fn answer(status: StatusCode, body: &impl Serialize, ignored: &[String]) -> Response {
    let mut response = json(status, &serde_json::to_value(body).unwrap_or_default());
    warn_ignored(&mut response, ignored);
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

/// Writes the `RateLimit-*` headers of a batch's own charge, which replace the gate's.
pub(crate) fn charged(response: &mut Response, decision: Option<Decision>) {
    if let Some(d) = decision {
        write_headers(&d, response.headers_mut());
    }
}

/// What a provider's JSON send route takes: the caller's key, the request's headers, and its
/// body read with the same content-type and size checks as `/v1`; a refused body is left for
/// the route to answer in its provider's shape.
pub struct JsonSend {
    pub key: AuthenticatedKey,
    pub headers: HeaderMap,
    pub body: Result<Bytes, ServiceError>,
}

impl FromRequest<AppState> for JsonSend {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let ProjectKey(key) = ProjectKey::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), state).await;
        Ok(JsonSend {
            body: json_body(&headers, body),
            key,
            headers,
        })
    }
}

/// The body of a JSON request, with the same content-type and size checks as `/v1`.
fn json_body(
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
        write_headers(decision, response.headers_mut());
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

/// A native field path as it is: for providers whose field names are mailgate's.
pub(crate) fn same_name(native: &str) -> String {
    native.to_string()
}

/// The status SendGrid and Mailgun give an error: 400 for anything wrong with the request,
/// else the status of its kind. (Resend and Postmark have tables of their own.)
pub(crate) fn status_of(err: &ServiceError) -> StatusCode {
    match err {
        ServiceError::Validation(_)
        | ServiceError::Unprocessable { .. }
        | ServiceError::TemplateNotFound { .. }
        | ServiceError::MalformedJson(_)
        | ServiceError::Conflict { .. }
        | ServiceError::UnsupportedMediaType(_) => StatusCode::BAD_REQUEST,
        ServiceError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        ServiceError::ForbiddenScope(_) | ServiceError::Forbidden { .. } => StatusCode::FORBIDDEN,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ServiceError::Refused(Refusal::Unavailable) | ServiceError::Unavailable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ServiceError::Refused(_) | ServiceError::AuthThrottled(_) => StatusCode::TOO_MANY_REQUESTS,
        ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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

/// An attachment a provider gives as bytes (a list of byte values, a form's file), as the
/// native request's content, already decoded.
pub(crate) fn attachment_of_bytes(
    filename: String,
    bytes: Vec<u8>,
    content_type: Option<String>,
    content_id: Option<String>,
) -> AttachmentRequest {
    AttachmentRequest {
        filename,
        content: Base64Content::from_bytes(bytes),
        content_type,
        content_id,
    }
}

/// A provider's error body and the statuses its routes answer with it, each with what it
/// means: the spec's list of a provider's errors.
pub trait ErrorResponses: utoipa::ToSchema {
    const STATUSES: &'static [(u16, &'static str)];
    /// Statuses answered in plain text rather than in the body.
    const PLAIN_TEXT: &'static [u16] = &[];
}

/// Every error a provider's routes answer, in its shape (`B`, its error body), for the spec.
pub struct Errors<B>(std::marker::PhantomData<B>);

impl<B: ErrorResponses> utoipa::IntoResponses for Errors<B> {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        use utoipa::openapi::{
            ContentBuilder, Ref, ResponseBuilder,
            schema::{ObjectBuilder, Type},
        };
        B::STATUSES
            .iter()
            .map(|&(status, description)| {
                let (content_type, content) = if B::PLAIN_TEXT.contains(&status) {
                    let text = ObjectBuilder::new().schema_type(Type::String);
                    ("text/plain", ContentBuilder::new().schema(Some(text)))
                } else {
                    let body = Ref::from_schema_name(B::name());
                    ("application/json", ContentBuilder::new().schema(Some(body)))
                };
                let response = ResponseBuilder::new()
                    .description(description)
                    .content(content_type, content.build());
                (status.to_string(), response.build().into())
            })
            .collect()
    }
}
