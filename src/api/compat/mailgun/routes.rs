//! Mailgun's handler: the form read and mapped, sent through the service's email operations
//! (or only checked, in test mode), and answered in Mailgun's shape.

use axum::{
    extract::{Path, Request, State},
    http::StatusCode,
    response::Response,
};

use uuid::Uuid;

use super::{
    super::shared::{answer, charged},
    batch,
    errors::{MailgunErrors, error},
    mapping::{Queued, queued},
    request::{Form, MessageForm},
};
use crate::{
    api::{AppState, auth::ProjectKey, error::ServiceError},
    ratelimit::Decision,
    service::emails::{self, Items},
    store::api_keys::AuthenticatedKey,
    submission::Draft,
};

/// Send a message, or a batch (Mailgun).
///
/// Mailgun's `POST /v3/{domain}/messages`. The domain only names the id (`<id@domain>`).
/// With `recipient-variables` (a JSON object keyed by recipient address), one message per
/// `to` recipient (up to 1000), each to that recipient alone with its own `%recipient.KEY%`
/// values; the answer names the first. One `send` unit per message, charged before any is
/// rendered. With `o:testmode=yes` the messages are checked and not stored or sent.
#[utoipa::path(post, path = "/v3/{domain}/messages", operation_id = "mailgun_send_message", tag = "mailgun",
    params(("domain" = String, Path, description = "The sending domain; it names the id")),
    request_body(content = MessageForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "Queued (committed)", body = Queued), MailgunErrors),
    security(("mailgun_basic" = []), ("api_key" = [])))]
pub async fn send(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    Path(domain): Path<String>,
    request: Request,
) -> Response {
    let read = async {
        let form = Form::read(request).await?;
        let (test_mode, ignored) = (form.test_mode(), form.ignored());
        let values = form
            .one(batch::FIELD)
            .map(|raw| batch::parse(&raw))
            .transpose()?;
        let base = form.into_request()?;
        Ok::<_, ServiceError>((base, values, test_mode, ignored))
    };
    let (base, values, test_mode, ignored) = match read.await {
        Ok(read) => read,
        Err(err) => return error(err),
    };
    let sent = match values {
        None => submit(&state, &key, test_mode, std::iter::once(Ok(base))).await,
        Some(values) => match batch::recipients(&base) {
            Ok(to) => {
                // Made one at a time as the core prepares them, after it charged them all.
                let drafts = to
                    .into_iter()
                    .map(move |recipient| Ok(batch::personal(base.clone(), recipient, &values)));
                submit(&state, &key, test_mode, drafts).await
            }
            Err(err) => Err((err, None)),
        },
    };
    let (mut response, decision) = match sent {
        Ok((first, decision)) => (
            answer(StatusCode::OK, &queued(first, &domain), &ignored),
            decision,
        ),
        Err((err, decision)) => (error(err), decision),
    };
    charged(&mut response, decision);
    response
}

/// The request's messages, all or none: charged, checked, and committed unless in test
/// mode. The first message's id, or the first refusal; and the charge's decision.
async fn submit<D: Draft>(
    state: &AppState,
    key: &AuthenticatedKey,
    test_mode: bool,
    drafts: impl IntoIterator<Item = Result<D, ServiceError>, IntoIter: ExactSizeIterator>,
) -> Result<(Uuid, Option<Decision>), (ServiceError, Option<Decision>)> {
    if test_mode {
        let (checked, decision) = emails::check_batch(state, key, drafts, Items::AllOrNothing)
            .await
            .map_err(|err| (err, None))?;
        return match checked.into_iter().collect::<Result<Vec<_>, _>>() {
            Ok(ids) => Ok((ids[0], decision)),
            Err(err) => Err((err, decision)),
        };
    }
    let mut prepared = emails::prepare_batch(state, key, drafts, Items::AllOrNothing)
        .await
        .map_err(|err| (err, None))?;
    if let Some(i) = prepared.items.iter().position(Result::is_err) {
        let err = prepared.items.swap_remove(i).err().expect("an error at i");
        return Err((err, prepared.decision));
    }
    let (answers, decision) = emails::commit_batch(state, key, prepared)
        .await
        .map_err(|err| (err, None))?;
    match answers.into_iter().next().expect("at least one message") {
        Ok(first) => Ok((first.id, decision)),
        Err(err) => Err((err, decision)),
    }
}
