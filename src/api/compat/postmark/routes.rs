//! Postmark's handlers: one message (with content or a stored template) and batches of them,
//! each read, mapped, sent through the service's email operations and answered in Postmark's
//! shape.

use axum::{extract::State, http::StatusCode, response::Response};
use serde_json::Value;

use super::{
    super::{
        batch::{check_size, read_item},
        shared::{JsonSend, answer, charged, warn_ignored},
    },
    errors::{PostmarkErrors, error},
    mapping::{Kind, Sent},
    request::{Message, MessageBatch, TemplateBatch, ignored},
};
use crate::{
    api::{
        AppState,
        error::ServiceError,
        extract::{parse_json, parse_json_object},
    },
    service::emails,
    store::api_keys::AuthenticatedKey,
};

async fn single(state: AppState, send: JsonSend, kind: Kind) -> Response {
    let key = send.key;
    let sent = async {
        let body = send.body?;
        let message: Message = parse_json_object(&body)?;
        let to = message.to.clone().unwrap_or_default();
        let request = message.into_request(kind)?;
        let accepted = emails::send(&state, &key, request).await?;
        Ok::<_, ServiceError>((body, Sent::accepted(to, &accepted)))
    };
    match sent.await {
        Ok((body, sent)) => {
            let ignored = serde_json::from_slice::<Value>(&body)
                .map(|value| ignored(&value))
                .unwrap_or_default();
            answer(StatusCode::OK, &sent, &ignored)
        }
        Err(err) => error(err),
    }
}

async fn batch(state: AppState, key: AuthenticatedKey, items: Vec<Value>, kind: Kind) -> Response {
    if let Err(err) = check_size::<Message>(items.len()) {
        return error(err);
    }
    let mut ignored_fields = Vec::new();
    let mut recipients = Vec::with_capacity(items.len());
    let drafts = items
        .into_iter()
        .map(|item| {
            recipients.push(
                item.get("To")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
            for name in ignored(&item) {
                if !ignored_fields.contains(&name) {
                    ignored_fields.push(name);
                }
            }
            read_item::<Message>(item, || "body".into(), |at| at)?.into_request(kind)
        })
        .collect();
    let (answers, decision) = match emails::submit_batch(&state, &key, drafts).await {
        Ok(done) => done,
        Err(err) => return error(err),
    };
    let results: Vec<Sent> = answers
        .into_iter()
        .zip(recipients)
        .map(|(answer, to)| match answer {
            Ok(accepted) => Sent::accepted(to, &accepted),
            Err(err) => Sent::refused(to, &err),
        })
        .collect();
    let mut response = answer(StatusCode::OK, &results, &[]);
    charged(&mut response, decision);
    warn_ignored(&mut response, &ignored_fields);
    response
}

/// Send an email (Postmark).
///
/// Postmark's `POST /email`; `MessageID` is the mailgate id.
#[utoipa::path(post, path = "/email", operation_id = "postmark_send_email", tag = "postmark",
    request_body = Message,
    responses((status = 200, description = "Accepted and committed", body = Sent), PostmarkErrors),
    security(("postmark_token" = [])))]
pub async fn send(State(state): State<AppState>, send: JsonSend) -> Response {
    single(state, send, Kind::Content).await
}

/// Send an email with a stored template (Postmark).
///
/// `TemplateAlias` (or `TemplateId`, as a number) names a stored mailgate template;
/// `TemplateModel` holds its variables.
#[utoipa::path(post, path = "/email/withTemplate", operation_id = "postmark_send_with_template", tag = "postmark",
    request_body = Message,
    responses((status = 200, description = "Accepted and committed", body = Sent), PostmarkErrors),
    security(("postmark_token" = [])))]
pub async fn send_with_template(State(state): State<AppState>, send: JsonSend) -> Response {
    single(state, send, Kind::Template).await
}

/// Send up to 500 emails (Postmark).
///
/// Answers 200 with one result per message, in order; a refused one has a non-zero
/// `ErrorCode`.
#[utoipa::path(post, path = "/email/batch", operation_id = "postmark_send_batch", tag = "postmark",
    request_body = MessageBatch,
    responses((status = 200, description = "One result per message", body = Vec<Sent>), PostmarkErrors),
    security(("postmark_token" = [])))]
pub async fn send_batch(State(state): State<AppState>, send: JsonSend) -> Response {
    let items = send.body.and_then(|body| parse_json::<Vec<Value>>(&body));
    match items {
        Ok(items) => batch(state, send.key, items, Kind::Content).await,
        Err(err) => error(err),
    }
}

/// Send up to 500 emails with stored templates (Postmark).
#[utoipa::path(post, path = "/email/batchWithTemplates", operation_id = "postmark_send_batch_with_templates", tag = "postmark",
    request_body = TemplateBatch,
    responses((status = 200, description = "One result per message", body = Vec<Sent>), PostmarkErrors),
    security(("postmark_token" = [])))]
pub async fn send_batch_with_templates(State(state): State<AppState>, send: JsonSend) -> Response {
    let items = send
        .body
        .and_then(|body| parse_json_object::<TemplateBatch>(&body))
        .map(|b| b.messages);
    match items {
        Ok(items) => batch(state, send.key, items, Kind::Template).await,
        Err(err) => error(err),
    }
}
