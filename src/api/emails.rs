//! `/v1/emails`: send one or a batch, list, read status and timeline, read the exact MIME,
//! reschedule, cancel.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

use super::{
    AppState,
    auth::ProjectKey,
    email_request::SendRequest,
    error::ProblemResponses,
    error::{FieldError, Problem, ServiceError, ServiceResult},
    extract::{AppQuery, RawJson, parse_json, parse_json_object},
    idempotency,
};
use crate::{
    domain::{Scope, status::MessageStatus},
    service::emails::{self, EmailDetail},
    store::messages::MessageSummary,
    submission::Accepted,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/emails", post(send).get(list))
        .route("/v1/emails/batch", post(send_batch))
        .route("/v1/emails/{id}", get(show).patch(reschedule))
        .route("/v1/emails/{id}/source", get(source))
        .route("/v1/emails/{id}/cancel", post(cancel))
}

/// Send one message.
///
/// Answers 202 only once the message is committed in Postgres.
#[utoipa::path(post, path = "/v1/emails", operation_id = "send_email", tag = "emails", request_body = SendRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "Same key and body within 24 h replay the first answer")),
    responses((status = 202, description = "Accepted and committed", body = Accepted), ProblemResponses),
    security(("api_key" = [])))]
pub async fn send(
    State(state): State<AppState>,
    key: ProjectKey,
    headers: HeaderMap,
    RawJson(body): RawJson,
) -> ServiceResult<Response> {
    let key = key.require(Scope::Send)?.clone();
    let idem = idempotency::key_from(&headers)?;
    idempotency::answer_once(
        &state,
        key.project_id,
        idem,
        "POST /v1/emails",
        &body,
        || async {
            let request: SendRequest = parse_json_object(&body)?;
            let accepted = emails::send(&state, &key, request).await?;
            Ok((
                StatusCode::ACCEPTED,
                serde_json::to_value(accepted).map_err(anyhow::Error::from)?,
            ))
        },
    )
    .await
}

/// The body of a batch: 1 to 500 (`http.max_batch`) send bodies. Each item is checked on its
/// own and a bad one gets its problem in the result, so at the request level an item may be
/// any JSON value.
pub struct SendBatch;

impl utoipa::PartialSchema for SendBatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::{
            Ref,
            schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType},
        };
        let item = AnyOfBuilder::new()
            .item(Ref::from_schema_name("SendRequest"))
            .item(ObjectBuilder::new().schema_type(SchemaType::AnyValue))
            .description(Some("A send body, as `POST /v1/emails` takes it"));
        ArrayBuilder::new()
            .items(item)
            .min_items(Some(1))
            .max_items(Some(500))
            .into()
    }
}

impl utoipa::ToSchema for SendBatch {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("SendRequest".into(), SendRequest::schema()));
        <SendRequest as utoipa::ToSchema>::schemas(schemas);
    }
}

/// One result per batch item, in request order: the 202 body or the problem.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchItem {
    /// 202 for an accepted item, else the problem's status.
    pub status: u16,
    #[schema(value_type = BatchItemBody)]
    pub body: Value,
}

/// An accepted message or a problem.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum BatchItemBody {
    Accepted(Accepted),
    Problem(Problem),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    pub data: Vec<BatchItem>,
}

/// Send up to 500 messages.
///
/// Each item is checked on its own; the valid ones are committed together.
#[utoipa::path(post, path = "/v1/emails/batch", operation_id = "send_email_batch", tag = "emails", request_body = SendBatch,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "Same key and body within 24 h replay the first answer")),
    responses((status = 200, description = "Per-item results in request order", body = BatchResult), ProblemResponses),
    security(("api_key" = [])))]
pub async fn send_batch(
    State(state): State<AppState>,
    key: ProjectKey,
    headers: HeaderMap,
    RawJson(body): RawJson,
) -> ServiceResult<Response> {
    let key = key.require(Scope::Send)?.clone();
    let idem = idempotency::key_from(&headers)?;
    // A batch costs one send unit per item, charged before any item is rendered (the
    // rate-limit layer charged only the request); a replay charges nothing.
    let decision = std::sync::Mutex::new(None);
    let mut response = idempotency::answer_once(
        &state,
        key.project_id,
        idem,
        "POST /v1/emails/batch",
        &body,
        || async {
            let items: Vec<Value> = parse_json(&body)?;
            let max = state.config.http.max_batch;
            if items.is_empty() || items.len() > max {
                return Err(ServiceError::validation(
                    "body",
                    format!("a batch holds 1 to {max} messages, not {}", items.len()),
                ));
            }
            // Each item is read on its own; one bad item never sinks the others.
            let drafts = items
                .into_iter()
                .map(|item| {
                    if !item.is_object() {
                        return Err(ServiceError::validation("body", "must be a JSON object"));
                    }
                    serde_path_to_error::deserialize::<_, SendRequest>(item).map_err(|err| {
                        ServiceError::Validation(vec![FieldError::new(
                            err.path().to_string(),
                            err.inner().to_string(),
                        )])
                    })
                })
                .collect();
            let (answers, charged) = emails::submit_batch(&state, &key, drafts).await?;
            *decision.lock().expect("not poisoned") = charged;
            let results = answers
                .into_iter()
                .map(|answer| {
                    Ok(match answer {
                        Ok(accepted) => BatchItem {
                            status: StatusCode::ACCEPTED.as_u16(),
                            body: serde_json::to_value(accepted)?,
                        },
                        Err(err) => BatchItem {
                            status: err.status_code().as_u16(),
                            body: serde_json::to_value(err.to_problem())?,
                        },
                    })
                })
                .collect::<Result<Vec<_>, serde_json::Error>>()
                .map_err(anyhow::Error::from)?;
            Ok((
                StatusCode::OK,
                serde_json::to_value(BatchResult { data: results }).map_err(anyhow::Error::from)?,
            ))
        },
    )
    .await?;
    if let Some(d) = decision.into_inner().expect("not poisoned") {
        super::headers::write_headers(&d, response.headers_mut());
    }
    Ok(response)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EmailList {
    pub data: Vec<MessageSummary>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// List emails, newest first.
#[utoipa::path(get, path = "/v1/emails", operation_id = "list_emails", tag = "emails",
    params(
        ("status" = Option<MessageStatus>, Query, description = "Messages with this summary status"),
        ("tag" = Option<String>, Query, description = "Messages with this tag"),
        ("recipient" = Option<String>, Query, description = "Messages to this address"),
        ("from" = Option<String>, Query, description = "Messages from this address"),
        ("since" = Option<String>, Query, format = DateTime, description = "Created at or after (RFC 3339)"),
        ("until" = Option<String>, Query, format = DateTime, description = "Created before (RFC 3339)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$", description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, description = "One page", body = EmailList), ProblemResponses),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    key: ProjectKey,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> ServiceResult<Json<EmailList>> {
    let key = key.require(Scope::Messages)?;
    let emails::Page {
        data,
        next_cursor,
        has_more,
    } = emails::list(&state, key.project_id, &q).await?;
    Ok(Json(EmailList {
        data,
        next_cursor,
        has_more,
    }))
}

/// An email with its recipients and event timeline.
#[utoipa::path(get, path = "/v1/emails/{id}", operation_id = "show_email", tag = "emails",
    params(("id" = String, Path, description = "The email's id")),
    responses((status = 200, description = "The email", body = EmailDetail), ProblemResponses),
    security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ServiceResult<Json<EmailDetail>> {
    let key = key.require(Scope::Messages)?;
    let id = emails::parse_id(&id)?;
    Ok(Json(emails::detail(&state, key.project_id, id).await?))
}

/// The exact MIME relayed (or that would be, for sandbox mail).
#[utoipa::path(get, path = "/v1/emails/{id}/source", operation_id = "show_email_source", tag = "emails",
    params(("id" = String, Path, description = "The email's id")),
    responses((status = 200, description = "RFC 5322 message", content_type = "message/rfc822", body = String), ProblemResponses),
    security(("api_key" = [])))]
pub async fn source(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ServiceResult<Response> {
    let key = key.require(Scope::Messages)?;
    let id = emails::parse_id(&id)?;
    let mime = emails::source(&state, key.project_id, id).await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], mime).into_response())
}

/// Cancel every recipient not yet handed to a relay (scheduled, queued or deferred).
#[utoipa::path(post, path = "/v1/emails/{id}/cancel", operation_id = "cancel_email", tag = "emails",
    params(("id" = String, Path, description = "The email's id")),
    responses((status = 200, description = "The email after cancelling", body = EmailDetail), ProblemResponses),
    security(("api_key" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ServiceResult<Json<EmailDetail>> {
    let key = key.require(Scope::Send)?;
    let id = emails::parse_id(&id)?;
    emails::cancel(&state, key.project_id, id).await?;
    Ok(Json(emails::detail(&state, key.project_id, id).await?))
}

/// A new time for a scheduled email.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    /// When to send it (RFC 3339), at most `http.max_schedule_days` ahead; a time already
    /// past sends it now.
    #[schema(format = DateTime)]
    pub send_at: String,
}

/// Reschedule an email that has not been sent yet.
///
/// Moves every recipient still scheduled to `send_at`. `409 not_scheduled` once none is
/// (the message is being sent, was sent, or was not scheduled).
#[utoipa::path(patch, path = "/v1/emails/{id}", operation_id = "reschedule_email", tag = "emails",
    params(("id" = String, Path, description = "The email's id")),
    request_body = RescheduleRequest,
    responses((status = 200, description = "The email, rescheduled", body = EmailDetail), ProblemResponses),
    security(("api_key" = [])))]
pub async fn reschedule(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
    RawJson(body): RawJson,
) -> ServiceResult<Json<EmailDetail>> {
    let key = key.require(Scope::Send)?;
    let id = emails::parse_id(&id)?;
    let request: RescheduleRequest = parse_json_object(&body)?;
    let send_at = chrono::DateTime::parse_from_rfc3339(request.send_at.trim())
        .map_err(|e| ServiceError::validation("send_at", format!("is not an RFC 3339 time: {e}")))?
        .with_timezone(&chrono::Utc);
    emails::reschedule(&state, key.project_id, id, send_at).await?;
    Ok(Json(emails::detail(&state, key.project_id, id).await?))
}
