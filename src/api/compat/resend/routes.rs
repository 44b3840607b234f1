//! Resend's handlers: read the body (once per `Idempotency-Key`), map it, call the service's
//! email operations, and answer in Resend's shape.

use std::{collections::HashMap, future::Future};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    super::{
        batch::{check_size, read_item},
        shared::{JsonSend, charged, ignored_in, json, warn_ignored},
    },
    errors::{ResendErrors, error, kept_answer, message},
    mapping::{
        BatchError, BatchResult, CancelledEmail, EmailList, EmailObject, Sent, email_object,
        listed_email, schedule,
    },
    request::{Email, EmailBatch, IGNORED, Update},
};
use crate::{
    api::{
        AppState,
        auth::ProjectKey,
        error::ServiceError,
        extract::{AppQuery, parse_json, parse_json_object},
        idempotency,
    },
    service::{
        emails::{self, Items, parse_id},
        error::Conflict,
    },
    store::api_keys::AuthenticatedKey,
};

/// The key, headers, body and `Idempotency-Key` of a send.
fn read(
    send: JsonSend,
) -> Result<(AuthenticatedKey, HeaderMap, Bytes, Option<String>), ServiceError> {
    let idem = idempotency::key_from(&send.headers);
    let body = send.body?;
    Ok((send.key, send.headers, body, idem?))
}

/// Runs `send` once per `Idempotency-Key` and body: a 4xx is kept in Resend's shape and
/// replayed, and the answer has the content type the SDKs want.
async fn once<Fut>(
    state: &AppState,
    project_id: Uuid,
    idem: Option<String>,
    route: &str,
    body: &[u8],
    send: impl FnOnce() -> Fut,
) -> Response
where
    Fut: Future<Output = Result<Value, ServiceError>>,
{
    let answer = idempotency::answer_once(state, project_id, idem, route, body, || async {
        match send().await {
            Ok(value) => Ok((StatusCode::OK, value)),
            Err(err) => kept_answer(err),
        }
    })
    .await;
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

/// Send an email (Resend).
///
/// Resend's `POST /emails`: answers `{"id"}`; the id works with `GET /v1/emails/{id}`.
#[utoipa::path(post, path = "/emails", operation_id = "resend_send_email", tag = "resend",
    request_body = Email,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$", description = "Same key and body within 24 h replay the first answer")),
    responses((status = 200, description = "Accepted and committed", body = Sent), ResendErrors),
    security(("api_key" = [])))]
pub async fn send(State(state): State<AppState>, send: JsonSend) -> Response {
    let (key, _, body, idem) = match read(send) {
        Ok(given) => given,
        Err(err) => return error(err),
    };
    let ignored = serde_json::from_slice::<Value>(&body)
        .map(|v| ignored_in(&v, IGNORED))
        .unwrap_or_default();
    let route = "POST /emails (resend)";
    let mut response = once(&state, key.project_id, idem, route, &body, || async {
        let email: Email = crate::api::extract::parse_json_object(&body)?;
        let request = email.into_request(Utc::now())?;
        let accepted = emails::send(&state, &key, request).await?;
        Ok(json!({"id": accepted.id}))
    })
    .await;
    warn_ignored(&mut response, &ignored);
    response
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
pub async fn send_batch(State(state): State<AppState>, send: JsonSend) -> Response {
    let (key, headers, body, idem) = match read(send) {
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
    let route = "POST /emails/batch (resend)";
    let mut response = once(&state, key.project_id, idem, route, &body, || async {
        let items: Vec<Value> = parse_json(&body)?;
        check_size::<Email>(items.len())?;
        let now = Utc::now();
        let drafts: Vec<_> = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                read_item::<Email>(item, || format!("[{i}]"), |at| format!("[{i}].{at}"))?
                    .into_request(now)
            })
            .collect();
        // Charged one send unit per item before anything is rendered; strict validation
        // stops at the first bad item.
        let mode = if permissive {
            Items::EachOnItsOwn
        } else {
            Items::AllOrNothing
        };
        let prepared = emails::prepare_batch(&state, &key, drafts, mode).await?;
        *decision.lock().expect("not poisoned") = prepared.decision.clone();
        if !permissive
            && let Some((i, err)) = prepared
                .items
                .iter()
                .enumerate()
                .find_map(|(i, p)| p.as_ref().err().map(|e| (i, e)))
        {
            return Err(ServiceError::validation(format!("[{i}]"), message(err)));
        }
        let (answers, _) = emails::commit_batch(&state, &key, prepared).await?;
        let mut data = Vec::new();
        let mut errors = Vec::new();
        for (index, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok(accepted) => data.push(Sent { id: accepted.id }),
                Err(err) => errors.push(BatchError {
                    index,
                    message: message(&err),
                }),
            }
        }
        let result = BatchResult {
            data,
            errors: permissive.then_some(errors),
        };
        serde_json::to_value(result).map_err(|e| ServiceError::Internal(e.into()))
    })
    .await;
    charged(&mut response, decision.into_inner().expect("not poisoned"));
    response
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
    let object = async {
        let id = parse_id(&id)?;
        let detail = emails::detail(&state, key.project_id, id).await?;
        let source = emails::source(&state, key.project_id, id)
            .await
            .unwrap_or_default();
        Ok::<_, ServiceError>(email_object(id, &detail, &source))
    };
    match object.await {
        Ok(object) => match serde_json::to_value(object) {
            Ok(v) => json(StatusCode::OK, &v),
            Err(e) => error(ServiceError::Internal(e.into())),
        },
        Err(err) => error(err),
    }
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

/// List emails, newest first (Resend).
///
/// `limit` (1 to 100, default 20) and `after` (the last id of the previous page); `before`
/// (paging back) is not supported.
#[utoipa::path(get, path = "/emails", operation_id = "resend_list_emails", tag = "resend",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("after" = Option<uuid::Uuid>, Query, description = "The last id of the previous page: the emails after it"),
    ),
    responses((status = 200, description = "One page", body = EmailList), ResendErrors),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> Response {
    let listed = async {
        let mut native = HashMap::new();
        for (name, value) in q {
            match name.as_str() {
                "limit" => {
                    native.insert("limit".to_string(), value);
                }
                "after" => {
                    let after = Uuid::parse_str(value.trim())
                        .map_err(|_| ServiceError::validation("after", "is not an email id"))?;
                    native.insert("cursor".to_string(), emails::encode_cursor(after));
                }
                "before" => {
                    return Err(ServiceError::validation(
                        "before",
                        "paging back is not supported: page forward with `after`",
                    ));
                }
                other => {
                    return Err(ServiceError::validation(
                        other.to_string(),
                        "is not a parameter of this route (limit, after)",
                    ));
                }
            }
        }
        let page = emails::list(&state, key.project_id, &native).await?;
        let ids: Vec<Uuid> = page.data.iter().map(|m| m.id).collect();
        let recipients = emails::recipients_of(&state, key.project_id, &ids).await?;
        let data = page
            .data
            .iter()
            .map(|m| listed_email(m, recipients.get(&m.id).map_or(&[][..], Vec::as_slice)))
            .collect();
        Ok::<_, ServiceError>(EmailList {
            object: "list",
            has_more: page.has_more,
            data,
        })
    };
    match listed.await {
        Ok(list) => match serde_json::to_value(list) {
            Ok(v) => json(StatusCode::OK, &v),
            Err(e) => error(ServiceError::Internal(e.into())),
        },
        Err(err) => error(err),
    }
}

/// Reschedule an email (Resend).
///
/// Moves a scheduled email to `scheduled_at`, while none of its recipients has been handed
/// to a relay.
#[utoipa::path(patch, path = "/emails/{id}", operation_id = "resend_update_email", tag = "resend",
    params(("id" = String, Path, description = "The email's id")),
    request_body = Update,
    responses((status = 200, description = "Rescheduled", body = CancelledEmail), ResendErrors),
    security(("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    send: JsonSend,
) -> Response {
    let key = send.key;
    let updated = async {
        let id = parse_id(&id)?;
        let update: Update = parse_json_object(&send.body?)?;
        if update
            .id
            .as_deref()
            .is_some_and(|body_id| body_id != id.to_string())
        {
            return Err(ServiceError::validation("id", "is not the id in the path"));
        }
        let send_at = schedule(&update.scheduled_at, Utc::now()).ok_or_else(|| {
            ServiceError::validation(
                "scheduled_at",
                "is neither an ISO 8601 time nor `in N minutes` (seconds, minutes, hours, days)",
            )
        })?;
        match emails::reschedule(&state, key.project_id, id, send_at).await {
            Ok(()) => Ok(id),
            Err(ServiceError::Conflict {
                kind: Conflict::NotScheduled,
                ..
            }) => Err(ServiceError::conflict(
                Conflict::NotScheduled,
                "the email is not scheduled: it was already sent, is being sent, or was cancelled",
            )),
            Err(err) => Err(err),
        }
    };
    match updated.await {
        Ok(id) => json(StatusCode::OK, &json!({"object": "email", "id": id})),
        Err(err) => error(err),
    }
}
