//! SendGrid's handler: the mail read and mapped into one message per personalization, checked
//! all together (one bad personalization refuses the mail), committed through the service's
//! email operations unless in sandbox mode, and answered as SendGrid does: an empty body with
//! the ids in headers.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderName, HeaderValue, StatusCode},
    response::Response,
};

use super::{
    super::shared::{JsonSend, charged, warn_ignored},
    errors::{SendGridErrors, error, error_at},
    request::Mail,
};
use crate::{
    api::{AppState, extract::parse_json_object},
    service::emails::{self, Items},
};

/// Header with the ids of every message a send made (one per personalization), beside
/// SendGrid's `X-Message-Id`, which names the first.
pub const MESSAGE_IDS: HeaderName = HeaderName::from_static("x-mailgate-message-ids");

fn empty(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .expect("static response")
}

/// Send mail (SendGrid).
///
/// SendGrid's `POST /v3/mail/send`: one message per personalization, all or none. `202` with
/// `X-Message-Id` (the first message's mailgate id) and `X-Mailgate-Message-Ids` (all of
/// them); `200` with nothing sent under `mail_settings.sandbox_mode.enable`.
#[utoipa::path(post, path = "/v3/mail/send", operation_id = "sendgrid_send_mail", tag = "sendgrid",
    request_body = Mail,
    responses(
        (status = 202, description = "Accepted and committed",
            headers(("X-Message-Id" = String, description = "The first message's id"))),
        (status = 200, description = "Sandbox mode: valid, nothing sent"),
        SendGridErrors),
    security(("api_key" = [])))]
pub async fn send(State(state): State<AppState>, send: JsonSend) -> Response {
    let key = send.key;
    let mail: Mail = match send.body.and_then(|b| parse_json_object(&b)) {
        Ok(mail) => mail,
        Err(err) => return error(err),
    };
    let (sandbox, ignored) = (mail.sandbox(), mail.ignored());
    let requests = match mail.into_requests() {
        Ok(requests) => requests,
        Err(err) => return error(err),
    };
    // Every personalization is charged a send unit before any is rendered, in sandbox mode
    // too (checking costs the same work); all or nothing: the first bad one refuses the mail.
    let mut response = if sandbox {
        let (checked, decision) =
            match emails::check_batch(&state, &key, requests, Items::AllOrNothing).await {
                Ok(done) => done,
                Err(err) => return error(err),
            };
        if let Some(i) = checked.iter().position(Result::is_err) {
            let err = checked.into_iter().nth(i).and_then(Result::err);
            let mut response = error_at(Some(i), err.expect("an error at i"));
            charged(&mut response, decision);
            return response;
        }
        let mut response = empty(StatusCode::OK);
        charged(&mut response, decision);
        response
    } else {
        let prepared =
            match emails::prepare_batch(&state, &key, requests, Items::AllOrNothing).await {
                Ok(prepared) => prepared,
                Err(err) => return error(err),
            };
        if let Some(i) = prepared.items.iter().position(Result::is_err) {
            let err = prepared.items.into_iter().nth(i).and_then(Result::err);
            let mut response = error_at(Some(i), err.expect("an error at i"));
            charged(&mut response, prepared.decision);
            return response;
        }
        let (answers, decision) = match emails::commit_batch(&state, &key, prepared).await {
            Ok(done) => done,
            Err(err) => return error(err),
        };
        let ids: Vec<String> = answers
            .into_iter()
            .filter_map(Result::ok)
            .map(|a| a.id.to_string())
            .collect();
        let mut response = empty(StatusCode::ACCEPTED);
        if let Some(first) = ids.first()
            && let Ok(value) = HeaderValue::from_str(first)
        {
            response.headers_mut().insert("x-message-id", value);
        }
        if let Ok(value) = HeaderValue::from_str(&ids.join(", ")) {
            response.headers_mut().insert(MESSAGE_IDS, value);
        }
        charged(&mut response, decision);
        response
    };
    warn_ignored(&mut response, &ignored);
    response
}
