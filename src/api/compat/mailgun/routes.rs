//! Mailgun's handler: the form read and mapped, sent through the service's email operations
//! (or only checked, in test mode), and answered in Mailgun's shape.

use axum::{
    extract::{Path, Request, State},
    http::StatusCode,
    response::Response,
};

use super::{
    super::shared::answer,
    errors::{MailgunErrors, error},
    mapping::{Queued, queued},
    request::{Form, MessageForm},
};
use crate::{
    api::{AppState, auth::ProjectKey, error::ServiceError},
    service::emails,
};

/// Send a message (Mailgun).
///
/// Mailgun's `POST /v3/{domain}/messages`. The domain only names the id (`<id@domain>`).
/// With `o:testmode=yes` the message is checked and not stored or sent.
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
    let sent = async {
        let form = Form::read(request).await?;
        let (test_mode, ignored) = (form.test_mode(), form.ignored());
        let request = form.into_request()?;
        let id = if test_mode {
            emails::check(&state, &key, request).await?
        } else {
            emails::send(&state, &key, request).await?.id
        };
        Ok::<_, ServiceError>((id, ignored))
    };
    match sent.await {
        Ok((id, ignored)) => answer(StatusCode::OK, &queued(id, &domain), &ignored),
        Err(err) => error(err),
    }
}
