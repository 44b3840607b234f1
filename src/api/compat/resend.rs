//! Resend's send API: `POST /emails`, `POST /emails/batch` (`x-batch-validation`),
//! `GET /emails/{id}`, `POST /emails/{id}/cancel`, with `Authorization: Bearer <key>` and
//! `Idempotency-Key`. Errors are `{"statusCode", "name", "message"}`: resend-python picks its
//! exception class from the status and `name`, resend-node returns them as `error`.

use std::collections::BTreeMap;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::Response,
    routing::{get, post},
};
use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{describe, ignored_in, json, json_body, reshape, warn_ignored};
use crate::{
    api::{
        AppState,
        auth::{ProjectKey, bearer},
        email_request::{AttachmentRequest, SendRequest},
        error::{FieldError, ServiceError},
        extract::parse_json,
        gate::{Admits, Credentials},
        idempotency,
    },
    domain::Scope,
    ratelimit::Refusal,
    service::{
        emails::{self, detail, parse_id},
        error::{AuthFailure, Conflict},
    },
};

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/emails", post(send))
        .route("/emails/", post(send))
        .route("/emails/batch", post(send_batch))
        .route("/emails/batch/", post(send_batch))
        .route("/emails/{id}", get(show))
        .route("/emails/{id}/cancel", post(cancel))
}

pub struct Resend;

impl Credentials for Resend {
    const ADMITS: Admits = Admits::KeyWithScope(Scope::Send);

    fn token(headers: &HeaderMap) -> Option<String> {
        bearer(headers).ok().map(str::to_string)
    }

    fn sends_one(method: &Method, path: &str) -> bool {
        method == Method::POST && path.trim_end_matches('/') == "/emails"
    }

    fn error(err: ServiceError) -> Response {
        error(err)
    }
}

/// Most messages in one batch, as Resend allows.
const MAX_BATCH: usize = 100;

/// Fields accepted and not acted on: named in `X-Mailgate-Ignored`.
const IGNORED: &[&str] = &["topic_id"];

/// One email as the Resend SDKs send it (snake_case; resend-node converts its camelCase).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResendEmail)]
pub struct Email {
    /// `"Name <address>"` or an address.
    #[schema(value_type = String)]
    pub from: Option<String>,
    /// An address or a list of up to 50.
    #[serde(default)]
    #[schema(value_type = Option<crate::api::email_request::AddressesDoc>)]
    pub to: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<crate::api::email_request::AddressesDoc>)]
    pub cc: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<crate::api::email_request::AddressesDoc>)]
    pub bcc: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<crate::api::email_request::AddressesDoc>)]
    pub reply_to: Option<Value>,
    /// Required without `template`; one line.
    #[serde(default)]
    #[schema(max_length = 998, pattern = r"^[^\r\n]*$")]
    pub subject: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    /// Extra headers, as for `/v1/emails`.
    #[serde(default)]
    #[schema(value_type = Option<HashMap<crate::api::email_request::HeaderName, crate::api::email_request::HeaderValue>>)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub attachments: Option<Vec<Attachment>>,
    /// Up to 10; each becomes a metadata entry `name: value`, and `name` a tag.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub tags: Option<Vec<Tag>>,
    /// RFC 3339, or `in N minutes` (seconds, minutes, hours, days).
    #[serde(default)]
    pub scheduled_at: Option<String>,
    /// A stored mailgate template by name, with its variables.
    #[serde(default)]
    pub template: Option<Template>,
    /// Accepted and ignored (named in `X-Mailgate-Ignored`).
    #[serde(default)]
    pub topic_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResendAttachment)]
pub struct Attachment {
    /// Base64, a list of byte values (resend-python), or a serialised Node Buffer
    /// `{"type": "Buffer", "data": […]}`.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub content: Option<Value>,
    #[serde(default)]
    pub filename: Option<String>,
    /// A remote file: refused, mailgate does not fetch URLs.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub content_id: Option<String>,
    #[serde(default)]
    pub inline_content_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResendTag)]
pub struct Tag {
    /// A tag and a metadata key: letters, digits, `-`, `_`, `.` and `:`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.:-]+$")]
    pub name: String,
    #[schema(max_length = 1000)]
    pub value: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResendTemplate)]
pub struct Template {
    /// The stored template's name.
    pub id: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
}

impl Email {
    /// The native request, or every field that cannot be mapped.
    pub fn into_request(self, now: DateTime<Utc>) -> Result<SendRequest, ServiceError> {
        let mut errors = Vec::new();
        let attachments = self.attachments.map(|list| {
            list.into_iter()
                .enumerate()
                .filter_map(|(i, a)| attachment(i, a, &mut errors))
                .collect()
        });
        let (mut tags, mut metadata) = (Vec::new(), BTreeMap::new());
        for tag in self.tags.unwrap_or_default() {
            tags.push(tag.name.clone());
            metadata.insert(tag.name, tag.value);
        }
        let send_at = self.scheduled_at.and_then(|raw| match schedule(&raw, now) {
            Some(t) => Some(t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            None => {
                errors.push(FieldError::new(
                    "scheduled_at",
                    "is neither an ISO 8601 time nor `in N minutes` (seconds, hours, days)",
                ));
                None
            }
        });
        if self.from.is_none() {
            errors.push(FieldError::new("from", "is required"));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let (template, variables) = match self.template {
            Some(t) => (Some(t.id), t.variables),
            None => (None, None),
        };
        Ok(SendRequest {
            from: Value::String(self.from.unwrap_or_default()),
            to: self.to,
            cc: self.cc,
            bcc: self.bcc,
            reply_to: self.reply_to,
            subject: self.subject,
            text: self.text,
            html: self.html,
            template,
            variables,
            headers: self.headers,
            attachments,
            tags: (!tags.is_empty()).then_some(tags),
            metadata: (!metadata.is_empty()).then_some(metadata),
            relay: None,
            send_at,
            // Resend sets tracking per domain, not per send: the project's defaults apply.
            track: None,
        })
    }
}

fn attachment(i: usize, a: Attachment, errors: &mut Vec<FieldError>) -> Option<AttachmentRequest> {
    let path = |f: &str| format!("attachments[{i}].{f}");
    if a.path.is_some() {
        errors.push(FieldError::new(
            path("path"),
            "remote attachments are not fetched: give the file as `content`",
        ));
        return None;
    }
    let Some(filename) = a.filename else {
        errors.push(FieldError::new(path("filename"), "is required"));
        return None;
    };
    let bytes = match a.content.as_ref().map(content_bytes) {
        Some(Ok(Some(bytes))) => bytes,
        Some(Ok(None)) => {
            // Base64 text: the native check reports bad base64 by its path.
            return Some(AttachmentRequest {
                filename,
                content: a.content.and_then(|c| c.as_str().map(str::to_string))?,
                content_type: a.content_type,
                content_id: a.content_id.or(a.inline_content_id),
            });
        }
        Some(Err(e)) => {
            errors.push(FieldError::new(path("content"), e));
            return None;
        }
        None => {
            errors.push(FieldError::new(path("content"), "is required"));
            return None;
        }
    };
    Some(AttachmentRequest {
        filename,
        content: base64::engine::general_purpose::STANDARD.encode(bytes),
        content_type: a.content_type,
        content_id: a.content_id.or(a.inline_content_id),
    })
}

/// Attachment bytes given as a list of byte values or a serialised Node Buffer; `None` for a
/// base64 string, which is passed on as it is.
fn content_bytes(content: &Value) -> Result<Option<Vec<u8>>, String> {
    let list = match content {
        Value::String(_) => return Ok(None),
        Value::Array(list) => list,
        Value::Object(map) if map.get("type") == Some(&json!("Buffer")) => match map.get("data") {
            Some(Value::Array(list)) => list,
            _ => return Err("a Buffer needs `data`, a list of byte values".into()),
        },
        _ => return Err("must be base64, a list of byte values or a Buffer".into()),
    };
    list.iter()
        .map(|v| {
            v.as_u64()
                .and_then(|b| u8::try_from(b).ok())
                .ok_or_else(|| "byte values are integers from 0 to 255".to_string())
        })
        .collect::<Result<Vec<u8>, _>>()
        .map(Some)
}

/// `scheduled_at`: RFC 3339, or Resend's plain `in N units`.
fn schedule(raw: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw.trim()) {
        return Some(t.with_timezone(&Utc));
    }
    let words: Vec<String> = raw
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let [in_, n, unit] = words.as_slice() else {
        return None;
    };
    let n: i64 = n.parse().ok().filter(|n| (0..=100_000).contains(n))?;
    let unit = unit.trim_end_matches('s');
    let step = match unit {
        "sec" | "second" => Duration::seconds(1),
        "min" | "minute" => Duration::minutes(1),
        "hour" | "hr" => Duration::hours(1),
        "day" => Duration::days(1),
        _ => return None,
    };
    (in_ == "in").then(|| now + step * n as i32)
}

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
    reshape(
        err,
        |f| f.to_string(),
        |err, message| {
            let (status, name) = status_and_name(err);
            (
                status,
                json!({"statusCode": status.as_u16(), "name": name, "message": message}),
            )
        },
    )
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
        ServiceError::ForbiddenScope(_) => (StatusCode::UNAUTHORIZED, "restricted_api_key"),
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

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendSent)]
pub struct Sent {
    pub id: Uuid,
}

/// Send an email (Resend).
///
/// Resend's `POST /emails`: answers `{"id"}`; the id works with `GET /v1/emails/{id}`.
#[utoipa::path(post, path = "/emails", operation_id = "resend_send_email", tag = "resend",
    request_body = Email,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "Same key and body within 24 h replay the first answer")),
    responses((status = 200, description = "Accepted and committed", body = Sent), ResendErrors),
    security(("api_key" = [])))]
pub async fn send(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (body, idem) = match json_body(&headers, body)
        .and_then(|body| Ok((body, idempotency::key_from(&headers)?)))
    {
        Ok(given) => given,
        Err(err) => return error(err),
    };
    let ignored = serde_json::from_slice::<Value>(&body)
        .map(|v| ignored_in(&v, IGNORED))
        .unwrap_or_default();
    let answer = idempotency::answer_once(
        &state,
        key.project_id,
        idem,
        "POST /emails (resend)",
        &body,
        || async {
            let sent = async {
                let email: Email = parse_object(&body)?;
                let request = email.into_request(Utc::now())?;
                emails::send(&state, &key, request).await
            };
            match sent.await {
                Ok(accepted) => Ok((StatusCode::OK, json!({"id": accepted.id}))),
                Err(err) => kept_answer(err),
            }
        },
    )
    .await;
    let mut response = finish(answer);
    warn_ignored(&mut response, &ignored);
    response
}

/// A 4xx kept by the idempotency store in Resend's shape; a 429 or 5xx not kept.
fn kept_answer(err: ServiceError) -> Result<(StatusCode, Value), ServiceError> {
    let (status, name) = status_and_name(&err);
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(err);
    }
    let message = describe(&err.to_problem(), |f| f.to_string());
    Ok((
        status,
        json!({"statusCode": status.as_u16(), "name": name, "message": message}),
    ))
}

/// The idempotent answer with the content type the SDKs want, or the refusal.
fn finish(answer: Result<Response, ServiceError>) -> Response {
    match answer {
        Ok(mut response) => {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response.headers_mut().remove(header::WWW_AUTHENTICATE);
            response
        }
        Err(err) => error(err),
    }
}

fn parse_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ServiceError> {
    crate::api::extract::parse_json_object(body)
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendBatchError)]
pub struct BatchError {
    pub index: usize,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendBatchResult)]
pub struct BatchResult {
    pub data: Vec<Sent>,
    /// Only with `x-batch-validation: permissive`: the refused items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<BatchError>>,
}

/// Send up to 100 emails (Resend).
///
/// Resend's `POST /emails/batch`. With `x-batch-validation: strict` (the default) one bad
/// item refuses the whole batch; with `permissive` the good ones are sent and the bad ones
/// listed in `errors`.
#[utoipa::path(post, path = "/emails/batch", operation_id = "resend_send_batch", tag = "resend",
    request_body = EmailBatch,
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "Same key and body within 24 h replay the first answer"),
        ("x-batch-validation" = Option<String>, Header, pattern = "^(strict|permissive)$", description = "`strict` (default) or `permissive`"),
    ),
    responses((status = 200, description = "Accepted and committed", body = BatchResult), ResendErrors),
    security(("api_key" = [])))]
pub async fn send_batch(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (body, idem) = match json_body(&headers, body)
        .and_then(|body| Ok((body, idempotency::key_from(&headers)?)))
    {
        Ok(given) => given,
        Err(err) => return error(err),
    };
    let permissive = match headers
        .get("x-batch-validation")
        .map(|v| v.to_str().unwrap_or(""))
    {
        None | Some("strict") => false,
        Some("permissive") => true,
        Some(_) => {
            return error(ServiceError::validation(
                "x-batch-validation",
                "is `strict` or `permissive`",
            ));
        }
    };
    let decision = std::sync::Mutex::new(None);
    let answer = idempotency::answer_once(
        &state,
        key.project_id,
        idem,
        "POST /emails/batch (resend)",
        &body,
        || async {
            let sent = async {
                let items: Vec<Value> = parse_json(&body)?;
                if items.is_empty() || items.len() > MAX_BATCH {
                    return Err(ServiceError::validation(
                        "body",
                        format!("a batch holds 1 to {MAX_BATCH} emails, not {}", items.len()),
                    ));
                }
                let now = Utc::now();
                let drafts = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        if !item.is_object() {
                            return Err(ServiceError::validation(
                                format!("[{i}]"),
                                "must be a JSON object",
                            ));
                        }
                        serde_path_to_error::deserialize::<_, Email>(item)
                            .map_err(|e| {
                                ServiceError::validation(
                                    format!("[{i}].{}", e.path()),
                                    e.inner().to_string(),
                                )
                            })?
                            .into_request(now)
                    })
                    .collect();
                let prepared = emails::prepare_batch(&state, &key, drafts).await;
                if !permissive
                    && let Some((i, err)) = prepared
                        .iter()
                        .enumerate()
                        .find_map(|(i, p)| p.as_ref().err().map(|e| (i, e)))
                {
                    return Err(ServiceError::validation(
                        format!("[{i}]"),
                        describe(&err.to_problem(), |f| f.to_string()),
                    ));
                }
                let (answers, charged) = emails::commit_batch(&state, &key, prepared).await?;
                *decision.lock().expect("not poisoned") = charged;
                let mut data = Vec::new();
                let mut errors = Vec::new();
                for (index, answer) in answers.into_iter().enumerate() {
                    match answer {
                        Ok(accepted) => data.push(Sent { id: accepted.id }),
                        Err(err) => errors.push(BatchError {
                            index,
                            message: describe(&err.to_problem(), |f| f.to_string()),
                        }),
                    }
                }
                Ok(BatchResult {
                    data,
                    errors: permissive.then_some(errors),
                })
            };
            match sent.await {
                Ok(result) => Ok((
                    StatusCode::OK,
                    serde_json::to_value(result).map_err(anyhow::Error::from)?,
                )),
                Err(err) => kept_answer(err),
            }
        },
    )
    .await;
    let mut response = finish(answer);
    if let Some(d) = decision.into_inner().expect("not poisoned") {
        crate::api::headers::write_headers(&d, response.headers_mut());
    }
    response
}

/// An email as `GET /emails/{id}` shows it (Resend's email object).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendEmailObject)]
pub struct EmailObject {
    /// Always `email`.
    pub object: &'static str,
    pub id: Uuid,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Option<Vec<String>>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub created_at: DateTime<Utc>,
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Resend's name for the message's status (`queued`, `scheduled`, `delivered`,
    /// `delivery_delayed`, `bounced`, `failed`, `suppressed`, `canceled`…).
    pub last_event: String,
    pub tags: Vec<TagOut>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendTagOut)]
pub struct TagOut {
    pub name: String,
    pub value: String,
}

/// Resend's word for a mailgate message status.
pub fn last_event(status: &str) -> &str {
    match status {
        "queued" | "sending" => "queued",
        "deferred" => "delivery_delayed",
        "delivered" | "partially_delivered" => "delivered",
        "cancelled" => "canceled",
        other => other,
    }
}

/// Read an email (Resend).
#[utoipa::path(get, path = "/emails/{id}", operation_id = "resend_get_email", tag = "resend",
    params(("id" = String, Path, description = "The email's id")),
    responses((status = 200, description = "The email", body = EmailObject), ResendErrors),
    security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    Path(id): Path<String>,
) -> Response {
    match email_object(&state, key.project_id, &id).await {
        Ok(object) => match serde_json::to_value(object) {
            Ok(v) => json(StatusCode::OK, &v),
            Err(e) => error(ServiceError::Internal(e.into())),
        },
        Err(err) => error(err),
    }
}

async fn email_object(
    state: &AppState,
    project_id: Uuid,
    id: &str,
) -> Result<EmailObject, ServiceError> {
    let id = parse_id(id)?;
    let detail = detail(state, project_id, id).await?;
    let source = emails::source(state, project_id, id)
        .await
        .unwrap_or_default();
    let parsed = mail_parser::MessageParser::default().parse(&source);
    let (html, text, reply_to) = match &parsed {
        Some(m) => (
            m.body_html(0).map(|s| s.into_owned()),
            m.body_text(0).map(|s| s.into_owned()),
            m.reply_to().map(|list| {
                list.iter()
                    .filter_map(|a| a.address().map(str::to_string))
                    .collect()
            }),
        ),
        None => (None, None, None),
    };
    let of_kind = |kind: &str| -> Vec<String> {
        detail
            .recipients
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.email.clone())
            .collect()
    };
    let message = &detail.message;
    let tags = message
        .tags
        .iter()
        .map(|name| TagOut {
            name: name.clone(),
            value: message.metadata[name.as_str()]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    Ok(EmailObject {
        object: "email",
        id,
        from: message.from_addr.clone(),
        to: of_kind("to"),
        cc: of_kind("cc"),
        bcc: of_kind("bcc"),
        reply_to,
        subject: message.subject.clone(),
        html,
        text,
        created_at: message.created_at,
        scheduled_at: message.send_at,
        last_event: last_event(&message.status).to_string(),
        tags,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendCancelled)]
pub struct CancelledEmail {
    /// Always `email`.
    pub object: &'static str,
    pub id: Uuid,
}

/// Cancel a scheduled email (Resend).
///
/// Cancels every recipient not yet handed to a relay.
#[utoipa::path(post, path = "/emails/{id}/cancel", operation_id = "resend_cancel_email", tag = "resend",
    params(("id" = String, Path, description = "The email's id")),
    responses((status = 200, description = "Cancelled", body = CancelledEmail), ResendErrors),
    security(("api_key" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    Path(id): Path<String>,
) -> Response {
    let cancelled = async {
        let id = parse_id(&id)?;
        match emails::cancel(&state, key.project_id, id).await {
            Ok(_) => Ok(id),
            // Resend's words for it.
            Err(ServiceError::Conflict {
                kind: Conflict::NotCancellable,
                ..
            }) => Err(ServiceError::conflict(
                Conflict::NotCancellable,
                "nothing left to cancel: the email was already sent or cancelled",
            )),
            Err(err) => Err(err),
        }
    };
    match cancelled.await {
        Ok(id) => json(StatusCode::OK, &json!({"object": "email", "id": id})),
        Err(err) => error(err),
    }
}

/// Every error a Resend route answers, in Resend's shape.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ResendErrors {
    #[response(
        status = 400,
        description = "Malformed JSON or not JSON (`validation_error`)"
    )]
    BadRequest(ErrorBody),
    #[response(
        status = 401,
        description = "No key (`missing_api_key`) or no `send` scope (`restricted_api_key`)"
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 403,
        description = "Invalid or revoked key (`invalid_api_key`)"
    )]
    Forbidden(ErrorBody),
    #[response(status = 404, description = "No such email (`not_found`)")]
    NotFound(ErrorBody),
    #[response(
        status = 409,
        description = "Idempotency-Key reused with another body (`invalid_idempotent_request`) or still running (`concurrent_idempotent_requests`)"
    )]
    Conflict(ErrorBody),
    #[response(status = 422, description = "Invalid fields (`validation_error`)")]
    Unprocessable(ErrorBody),
    #[response(
        status = 429,
        description = "Rate limit (`rate_limit_exceeded`) or quota (`daily_quota_exceeded`)"
    )]
    TooManyRequests(ErrorBody),
    #[response(
        status = 503,
        description = "Database or rate limiter unavailable (`application_error`)"
    )]
    Unavailable(ErrorBody),
}

/// The body of `/emails/batch` in the spec.
pub struct EmailBatch;

impl utoipa::PartialSchema for EmailBatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        super::batch_schema("ResendEmail", MAX_BATCH)
    }
}

impl utoipa::ToSchema for EmailBatch {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("ResendEmail".into(), Email::schema()));
        <Email as utoipa::ToSchema>::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_at_takes_rfc3339_or_in_n_units() {
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(schedule("in 1 min", now), Some(now + Duration::minutes(1)));
        assert_eq!(schedule("in 2 Hours", now), Some(now + Duration::hours(2)));
        assert_eq!(
            schedule("2030-01-02T00:00:00Z", now),
            Some(now + Duration::days(1))
        );
        assert_eq!(schedule("tomorrow at 9", now), None);
    }

    #[test]
    fn attachment_content_in_its_three_forms() {
        assert_eq!(
            content_bytes(&json!([104, 105])).unwrap(),
            Some(b"hi".to_vec())
        );
        assert_eq!(
            content_bytes(&json!({"type": "Buffer", "data": [104, 105]})).unwrap(),
            Some(b"hi".to_vec())
        );
        assert_eq!(content_bytes(&json!("aGk=")).unwrap(), None);
        assert!(content_bytes(&json!([256])).is_err());
    }
}
