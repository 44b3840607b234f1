//! `/v1/emails`: send one or a batch, list, read status and timeline, read the exact MIME,
//! cancel.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

use super::{
    AppState,
    auth::ProjectKey,
    email_request::SendRequest,
    error::{ApiError, ApiResult, FieldError, Problem},
    extract::{AppQuery, RawJson, parse_json, parse_json_object},
    idempotency,
    openapi::ProblemResponses,
    paging,
};
use crate::{
    domain::{
        Scope,
        status::{MessageStatus, parse_all, summarise},
    },
    store::messages::{
        self, Cancelled, EventRow, ListFilter, MessageRow, MessageSummary, RecipientRow,
    },
    submission::Accepted,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/emails", post(send).get(list))
        .route("/v1/emails/batch", post(send_batch))
        .route("/v1/emails/{id}", get(show))
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
) -> ApiResult<Response> {
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
            let accepted = state.submissions.submit(&key, request).await?;
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
) -> ApiResult<Response> {
    let key = key.require(Scope::Send)?.clone();
    let idem = idempotency::key_from(&headers)?;
    // A batch costs one send unit per valid message, charged once the items are checked
    // (the rate-limit layer charged only the request); a replay charges nothing.
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
                return Err(ApiError::validation(
                    "body",
                    format!("a batch holds 1 to {max} messages, not {}", items.len()),
                ));
            }
            // Check and render every item; one bad item never sinks the others.
            let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(items.len());
            let mut prepared = Vec::new();
            let mut slots = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let outcome = if !item.is_object() {
                    Err(ApiError::validation("body", "must be a JSON object"))
                } else {
                    match serde_path_to_error::deserialize::<_, SendRequest>(item) {
                        Ok(request) => state
                            .submissions
                            .prepare(&key, request)
                            .await
                            .map_err(ApiError::from),
                        Err(err) => Err(ApiError::Validation(vec![FieldError::new(
                            err.path().to_string(),
                            err.inner().to_string(),
                        )])),
                    }
                };
                match outcome {
                    Ok(p) => {
                        prepared.push(p);
                        slots.push(i);
                        results.push(None);
                    }
                    Err(err) => results.push(Some(BatchItem {
                        status: err.status_code().as_u16(),
                        body: serde_json::to_value(err.to_problem())
                            .map_err(anyhow::Error::from)?,
                    })),
                }
            }
            if !prepared.is_empty() {
                let units = prepared.len().min(u32::MAX as usize) as u32;
                let charged = state
                    .limiter
                    .check(key.id, &key.limits, crate::ratelimit::Class::Send, units)
                    .await?;
                *decision.lock().expect("not poisoned") = charged;
            }
            // The valid ones are committed together, in one statement.
            let accepted = state.submissions.commit(&key, prepared).await?;
            for (slot, answer) in slots.into_iter().zip(accepted) {
                results[slot] = Some(BatchItem {
                    status: StatusCode::ACCEPTED.as_u16(),
                    body: serde_json::to_value(answer).map_err(anyhow::Error::from)?,
                });
            }
            let data = results
                .into_iter()
                .map(|r| r.expect("every slot filled"))
                .collect();
            Ok((
                StatusCode::OK,
                serde_json::to_value(BatchResult { data }).map_err(anyhow::Error::from)?,
            ))
        },
    )
    .await?;
    if let Some(d) = decision.into_inner().expect("not poisoned") {
        super::limits::write_headers(&d, response.headers_mut());
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

const LIST_DEFAULT: i64 = 20;
const LIST_MAX: i64 = 100;

pub fn encode_cursor(id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(raw: &str) -> Option<Uuid> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()?;
    Uuid::from_slice(&bytes).ok()
}

fn parse_time(field: &str, raw: &str, errors: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(e) => {
            errors.push(FieldError::new(
                field,
                format!("is not an RFC 3339 time: {e}"),
            ));
            None
        }
    }
}

/// The filters and page size of a list query (`status`, `tag`, `recipient`, `from`, `since`,
/// `until`, `cursor`, `limit`), each bad one named; the console's message list reads the same.
pub fn list_filter(q: &HashMap<String, String>) -> ApiResult<(ListFilter, i64)> {
    let mut errors = Vec::new();
    let limit = paging::limit(q, LIST_DEFAULT, LIST_MAX, &mut errors);
    let statuses = MessageStatus::ALL.map(MessageStatus::as_str);
    let status = paging::one_of(q, "status", &statuses, &mut errors).map(str::to_string);
    let before = paging::cursor(q, decode_cursor, &mut errors);
    let filter = ListFilter {
        status,
        tag: q.get("tag").cloned(),
        recipient: q.get("recipient").cloned(),
        from: q.get("from").cloned(),
        since: q
            .get("since")
            .and_then(|s| parse_time("since", s, &mut errors)),
        until: q
            .get("until")
            .and_then(|s| parse_time("until", s, &mut errors)),
        before,
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok((filter, limit))
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
) -> ApiResult<Json<EmailList>> {
    let key = key.require(Scope::Messages)?;
    let (filter, limit) = list_filter(&q)?;
    let rows = messages::list(&state.pool, key.project_id, &filter, limit + 1).await?;
    let (data, next_cursor, has_more) = paging::split(rows, limit, |m| encode_cursor(m.id));
    Ok(Json(EmailList {
        data,
        next_cursor,
        has_more,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EmailDetail {
    #[serde(flatten)]
    pub message: MessageRow,
    pub recipients: Vec<RecipientRow>,
    pub events: Vec<EventRow>,
}

pub fn parse_id(raw: &str) -> ApiResult<Uuid> {
    // An id that cannot exist is simply not found, like another project's.
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("email"))
}

/// A message of this project with its recipients and events, read in one snapshot.
pub async fn detail(state: &AppState, project_id: Uuid, id: Uuid) -> ApiResult<EmailDetail> {
    // One snapshot for the message, its recipients and its events. Read on separate
    // connections, a delivery committing in between showed a `delivered` status without its
    // `delivered` event.
    let mut tx = state
        .pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let mut message = messages::find(&mut tx, project_id, id)
        .await?
        .ok_or(ApiError::NotFound("email"))?;
    let recipients = messages::recipients(&mut tx, id).await?;
    let events = messages::events(&mut tx, id).await?;
    tx.commit().await?;
    // The stored status is refreshed in batches; the recipients are the truth right now.
    message.status =
        summarise(&parse_all(recipients.iter().map(|r| r.status.as_str()))).to_string();
    Ok(EmailDetail {
        message,
        recipients,
        events,
    })
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
) -> ApiResult<Json<EmailDetail>> {
    let key = key.require(Scope::Messages)?;
    let id = parse_id(&id)?;
    Ok(Json(detail(&state, key.project_id, id).await?))
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
) -> ApiResult<Response> {
    let key = key.require(Scope::Messages)?;
    let id = parse_id(&id)?;
    let mime = messages::source(&state.pool, key.project_id, id)
        .await?
        .ok_or(ApiError::NotFound("email"))?;
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
) -> ApiResult<Json<EmailDetail>> {
    let key = key.require(Scope::Send)?;
    let id = parse_id(&id)?;
    cancel_message(&state, key.project_id, id).await?;
    Ok(Json(detail(&state, key.project_id, id).await?))
}

/// Cancels what is left of a message, or says why nothing was (also the console's cancel).
pub async fn cancel_message(state: &AppState, project_id: Uuid, id: Uuid) -> ApiResult<u64> {
    match messages::cancel(&state.pool, project_id, id).await? {
        Cancelled::NotFound => Err(ApiError::NotFound("email")),
        Cancelled::Nothing(statuses) => Err(ApiError::Conflict {
            code: "not_cancellable",
            detail: format!(
                "nothing left to cancel: the message is {}",
                summarise(&parse_all(statuses.iter().map(String::as_str)))
            ),
        }),
        Cancelled::Some(n) => {
            // The `cancelled` events queued webhooks.
            state.waker.webhooks.wake();
            Ok(n)
        }
    }
}
