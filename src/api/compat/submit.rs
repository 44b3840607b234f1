//! Sending several drafts in one request (a provider's batch): each is checked on its own, so a
//! bad one never sinks the others, and the good ones are charged and committed together, as
//! `POST /v1/emails/batch` does.

use crate::{
    api::{AppState, email_request::SendRequest, error::ApiError},
    ratelimit::{Class, Decision},
    store::api_keys::AuthenticatedKey,
    submission::{Accepted, Prepared},
};

/// Validates and renders every draft; the results are in input order.
pub async fn prepare_all(
    state: &AppState,
    key: &AuthenticatedKey,
    drafts: Vec<Result<SendRequest, ApiError>>,
) -> Vec<Result<Prepared, ApiError>> {
    let mut out = Vec::with_capacity(drafts.len());
    for draft in drafts {
        out.push(match draft {
            Ok(request) => state
                .submissions
                .prepare(key, request)
                .await
                .map_err(ApiError::from),
            Err(err) => Err(err),
        });
    }
    out
}

/// Charges one `send` unit per prepared message, then commits them in one statement. Each
/// slot keeps its refusal or gets its answer, in input order; the charge's decision is
/// returned for the response's `RateLimit-*` headers.
pub async fn commit_all(
    state: &AppState,
    key: &AuthenticatedKey,
    items: Vec<Result<Prepared, ApiError>>,
) -> Result<(Vec<Result<Accepted, ApiError>>, Option<Decision>), ApiError> {
    let mut prepared = Vec::new();
    let mut slots: Vec<Option<Result<Accepted, ApiError>>> = Vec::with_capacity(items.len());
    let mut positions = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Ok(p) => {
                prepared.push(p);
                positions.push(i);
                slots.push(None);
            }
            Err(err) => slots.push(Some(Err(err))),
        }
    }
    let mut decision = None;
    if !prepared.is_empty() {
        let units = prepared.len().min(u32::MAX as usize) as u32;
        decision = state
            .limiter
            .check(key.id, &key.limits, Class::Send, units)
            .await?;
    }
    let accepted = state.submissions.commit(key, prepared).await?;
    for (i, answer) in positions.into_iter().zip(accepted) {
        slots[i] = Some(Ok(answer));
    }
    let answers = slots
        .into_iter()
        .map(|slot| slot.expect("every slot filled"))
        .collect();
    Ok((answers, decision))
}
