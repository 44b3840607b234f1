//! Emails: send one or a batch, read one with its recipients and events, list, cancel,
//! reschedule, and
//! settle what the content policy held (release or discard).

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{
    AppState, Caller,
    error::{FieldError, ServiceError, ServiceResult},
    paging,
};
use crate::{
    domain::{
        Scope,
        status::{MessageStatus, parse_all, summarise},
    },
    ratelimit::{Class, Decision},
    store::{
        api_keys::AuthenticatedKey,
        messages::{
            self, Cancelled, EventRow, ListFilter, MessageRow, MessageSummary, RecipientRow, Settle,
        },
    },
    submission::{Accepted, Draft, Prepared, SubmissionError},
};

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
pub fn list_filter(q: &HashMap<String, String>) -> ServiceResult<(ListFilter, i64)> {
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
        return Err(ServiceError::Validation(errors));
    }
    Ok((filter, limit))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EmailDetail {
    #[serde(flatten)]
    pub message: MessageRow,
    pub recipients: Vec<RecipientRow>,
    pub events: Vec<EventRow>,
    /// How often the tracking pixel was loaded (`null` until it first is). Only the first
    /// open, and then one per `tracking.open_window_secs`, is an `opened` event; the count
    /// has them all.
    pub opens: Option<crate::store::tracking::Opens>,
}

pub fn parse_id(raw: &str) -> ServiceResult<Uuid> {
    // An id that cannot exist is simply not found, like another project's.
    Uuid::parse_str(raw).map_err(|_| ServiceError::NotFound("email"))
}

/// A message of this project with its recipients and events, read in one snapshot.
pub async fn detail(state: &AppState, project_id: Uuid, id: Uuid) -> ServiceResult<EmailDetail> {
    // One snapshot for the message, its recipients and its events. Read on separate
    // connections, a delivery committing in between showed a `delivered` status without its
    // `delivered` event.
    let mut tx = state
        .pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let mut message = messages::find(&mut tx, project_id, id)
        .await?
        .ok_or(ServiceError::NotFound("email"))?;
    let recipients = messages::recipients(&mut tx, id).await?;
    let events = messages::events(&mut tx, id).await?;
    let opens = crate::store::tracking::opens(&mut tx, id).await?;
    tx.commit().await?;
    // The stored status is refreshed in batches; the recipients are the truth right now.
    message.status =
        summarise(&parse_all(recipients.iter().map(|r| r.status.as_str()))).to_string();
    Ok(EmailDetail {
        message,
        recipients,
        events,
        opens,
    })
}

/// Cancels what is left of a message, or says why nothing was.
pub async fn cancel(state: &AppState, project_id: Uuid, id: Uuid) -> ServiceResult<u64> {
    match messages::cancel(&state.pool, project_id, id).await? {
        Cancelled::NotFound => Err(ServiceError::NotFound("email")),
        Cancelled::Nothing(statuses) => Err(ServiceError::Conflict {
            kind: crate::service::error::Conflict::NotCancellable,
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

/// Moves a message of this project to be sent at `send_at` instead, while some of its
/// recipients are still scheduled (none handed to a relay yet). `send_at` may be at most
/// `http.max_schedule_days` ahead; a time already past sends them now.
pub async fn reschedule(
    state: &AppState,
    project_id: Uuid,
    id: Uuid,
    send_at: DateTime<Utc>,
) -> ServiceResult<()> {
    let max = chrono::Duration::days(state.config.http.max_schedule_days);
    if send_at > Utc::now() + max {
        return Err(ServiceError::validation(
            "send_at",
            format!("may be at most {} days ahead", max.num_days()),
        ));
    }
    match messages::reschedule(&state.pool, project_id, id, send_at).await? {
        Cancelled::NotFound => Err(ServiceError::NotFound("email")),
        Cancelled::Nothing(statuses) => Err(ServiceError::Conflict {
            kind: crate::service::error::Conflict::NotScheduled,
            detail: format!(
                "nothing is scheduled: the message is {}",
                summarise(&parse_all(statuses.iter().map(String::as_str)))
            ),
        }),
        Cancelled::Some(_) => {
            // Moved earlier, it may be due now.
            state.waker.mail.wake();
            Ok(())
        }
    }
}

/// A discard's reason, checked; none given reads "no reason given" (the console's too).
pub fn discard_reason(reason: Option<String>) -> ServiceResult<String> {
    let reason = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "no reason given".into());
    if reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(ServiceError::validation(
            "reason",
            "at most 500 characters, no control characters",
        ));
    }
    Ok(reason)
}

/// Releases or discards a held message (of `project` only, when given) and wakes what must
/// act on it; the console's buttons settle through here too.
pub async fn settle_in(
    state: &AppState,
    project: Option<uuid::Uuid>,
    id: uuid::Uuid,
    settle: Settle,
) -> ServiceResult<()> {
    match messages::settle_held(&state.pool, project, id, &settle).await? {
        Cancelled::NotFound => Err(ServiceError::NotFound("email")),
        Cancelled::Nothing(statuses) => Err(ServiceError::Conflict {
            kind: crate::service::error::Conflict::NotHeld,
            detail: format!(
                "nothing is held: the message is {}",
                summarise(&parse_all(statuses.iter().map(String::as_str)))
            ),
        }),
        Cancelled::Some(_) => {
            if matches!(settle, Settle::Release) {
                state.waker.mail.wake();
            }
            state.waker.webhooks.wake();
            Ok(())
        }
    }
}

/// Sends one message of `key`'s project.
pub async fn send(
    state: &AppState,
    key: &AuthenticatedKey,
    draft: impl Draft,
) -> ServiceResult<Accepted> {
    Ok(state.submissions.submit(key, draft).await?)
}

/// Checks, renders and scans one message as a send would, and commits nothing (a provider's
/// test mode): the id it would have had.
pub async fn check(
    state: &AppState,
    key: &AuthenticatedKey,
    draft: impl Draft,
) -> ServiceResult<Uuid> {
    Ok(state.submissions.prepare(key, draft).await?.id)
}

/// How a batch's items stand together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Items {
    /// One bad item never sinks the others: every item is prepared.
    EachOnItsOwn,
    /// One bad item refuses the request: preparing stops at the first refusal, which is the
    /// last slot of the answer.
    AllOrNothing,
}

/// A batch's messages, each prepared or refused, in input order, and the decision of the
/// charge for the `RateLimit-*` headers.
pub struct PreparedBatch {
    pub items: Vec<Result<Prepared, ServiceError>>,
    pub decision: Option<Decision>,
}

/// Charges one `send` unit per message the batch asks for (each of `drafts`, a slot its
/// transport could not read included), then checks, renders and scans each draft. Nothing
/// is rendered before the charge: over the limit, the request is refused with `429` and no
/// work is done. The bytes rendered count against `http.max_request_bytes_rendered`; past
/// it the whole request is refused (`413`).
pub async fn prepare_batch<D: Draft>(
    state: &AppState,
    key: &AuthenticatedKey,
    drafts: impl IntoIterator<Item = Result<D, ServiceError>, IntoIter: ExactSizeIterator>,
    items: Items,
) -> ServiceResult<PreparedBatch> {
    let drafts = drafts.into_iter();
    let decision = charge_batch(state, key, drafts.len()).await?;
    let items = prepare_each(state, key, drafts, items, |p| p).await?;
    Ok(PreparedBatch { items, decision })
}

/// A provider's sandbox or test mode for a batch: charged, checked, rendered and scanned as
/// [`prepare_batch`] does, committing nothing; the ids the messages would have had. Each
/// message's bytes are dropped as soon as it is checked, so a large batch holds one message
/// at a time.
pub async fn check_batch<D: Draft>(
    state: &AppState,
    key: &AuthenticatedKey,
    drafts: impl IntoIterator<Item = Result<D, ServiceError>, IntoIter: ExactSizeIterator>,
    items: Items,
) -> ServiceResult<(Vec<Result<Uuid, ServiceError>>, Option<Decision>)> {
    let drafts = drafts.into_iter();
    let decision = charge_batch(state, key, drafts.len()).await?;
    let ids = prepare_each(state, key, drafts, items, |p| p.id).await?;
    Ok((ids, decision))
}

/// One `send` unit per message asked for, before any of them is rendered.
async fn charge_batch(
    state: &AppState,
    key: &AuthenticatedKey,
    messages: usize,
) -> ServiceResult<Option<Decision>> {
    if messages == 0 {
        return Ok(None);
    }
    let units = messages.min(u32::MAX as usize) as u32;
    state
        .gate
        .charge(&Caller::Key(key.clone()), Class::Send, units)
        .await
}

/// Prepares each draft with the request's shared [`Batch`](crate::submission::Batch), and
/// keeps what `keep` takes of each. A request over its rendered-bytes bound is refused as a
/// whole.
async fn prepare_each<D: Draft, T>(
    state: &AppState,
    key: &AuthenticatedKey,
    drafts: impl Iterator<Item = Result<D, ServiceError>>,
    items: Items,
    keep: impl Fn(Prepared) -> T,
) -> ServiceResult<Vec<Result<T, ServiceError>>> {
    let mut batch = state.submissions.batch();
    let mut out = Vec::with_capacity(drafts.size_hint().0);
    for draft in drafts {
        let slot = match draft {
            Ok(request) => match state.submissions.prepare_in(key, request, &mut batch).await {
                Ok(prepared) => Ok(keep(prepared)),
                Err(err @ SubmissionError::RequestTooLarge { .. }) => return Err(err.into()),
                Err(err) => Err(err.into()),
            },
            Err(err) => Err(err),
        };
        let refused = slot.is_err();
        out.push(slot);
        if refused && items == Items::AllOrNothing {
            break;
        }
    }
    Ok(out)
}

/// Commits a prepared batch's messages in one statement (they were charged when prepared).
/// Each slot keeps its refusal or gets its answer, in input order; the charge's decision is
/// returned for the `RateLimit-*` headers.
pub async fn commit_batch(
    state: &AppState,
    key: &AuthenticatedKey,
    batch: PreparedBatch,
) -> ServiceResult<(Vec<Result<Accepted, ServiceError>>, Option<Decision>)> {
    let mut prepared = Vec::new();
    let mut slots: Vec<Option<Result<Accepted, ServiceError>>> =
        Vec::with_capacity(batch.items.len());
    let mut positions = Vec::new();
    for (i, item) in batch.items.into_iter().enumerate() {
        match item {
            Ok(p) => {
                prepared.push(p);
                positions.push(i);
                slots.push(None);
            }
            Err(err) => slots.push(Some(Err(err))),
        }
    }
    let accepted = state.submissions.commit(key, prepared).await?;
    for (i, answer) in positions.into_iter().zip(accepted) {
        slots[i] = Some(Ok(answer));
    }
    let answers = slots
        .into_iter()
        .map(|slot| slot.expect("every slot filled"))
        .collect();
    Ok((answers, batch.decision))
}

/// A batch whose items stand on their own, in one call: [`prepare_batch`], then
/// [`commit_batch`].
pub async fn submit_batch<D: Draft>(
    state: &AppState,
    key: &AuthenticatedKey,
    drafts: Vec<Result<D, ServiceError>>,
) -> ServiceResult<(Vec<Result<Accepted, ServiceError>>, Option<Decision>)> {
    let prepared = prepare_batch(state, key, drafts, Items::EachOnItsOwn).await?;
    commit_batch(state, key, prepared).await
}

/// One page of a project's messages, newest first, with the cursor of the next page.
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// The messages of a project matching a list query (its filters, cursor and limit).
pub async fn list(
    state: &AppState,
    project_id: Uuid,
    q: &HashMap<String, String>,
) -> ServiceResult<Page<MessageSummary>> {
    let (filter, limit) = list_filter(q)?;
    let rows = messages::list(&state.pool, project_id, &filter, limit + 1).await?;
    let (data, next_cursor, has_more) = paging::split(rows, limit, |m| encode_cursor(m.id));
    Ok(Page {
        data,
        next_cursor,
        has_more,
    })
}

/// The recipients of these messages of this project, by message: (address, kind) each.
pub async fn recipients_of(
    state: &AppState,
    project_id: Uuid,
    ids: &[Uuid],
) -> ServiceResult<HashMap<Uuid, Vec<(String, String)>>> {
    let mut out: HashMap<Uuid, Vec<(String, String)>> = HashMap::new();
    for (message, email, kind) in messages::recipients_of(&state.pool, project_id, ids).await? {
        out.entry(message).or_default().push((email, kind));
    }
    Ok(out)
}

/// The exact MIME of a message of this project.
/// The MIME of a message; a message whose body retention deleted has none to give.
pub async fn source(state: &AppState, project_id: Uuid, id: Uuid) -> ServiceResult<Vec<u8>> {
    messages::source(&state.pool, project_id, id)
        .await?
        .ok_or(ServiceError::NotFound("email"))?
        .ok_or(ServiceError::NotFound(
            "email body (deleted by retention.body_days)",
        ))
}

/// Releases or discards a held message for a caller: a key of the project with the `send`
/// scope, or the operator for any project. Answers the message as it is now.
pub async fn settle(
    state: &AppState,
    who: &Caller,
    id: &str,
    settle: Settle,
) -> ServiceResult<EmailDetail> {
    let project = who.project_with(Scope::Send)?;
    let id = parse_id(id)?;
    settle_in(state, project, id, settle).await?;
    let project = match project {
        Some(p) => p,
        None => messages::project_of(&state.pool, id)
            .await?
            .ok_or(ServiceError::NotFound("email"))?,
    };
    detail(state, project, id).await
}
