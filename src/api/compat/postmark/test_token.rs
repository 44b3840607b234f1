//! Postmark's test token: `X-Postmark-Server-Token: POSTMARK_API_TEST` on any send route. As
//! Postmark does, the request is checked and answered (`"Message": "Test job accepted"`),
//! and nothing is stored or sent.
//!
//! The token belongs to no project, so what can be checked is what needs none: the body, its
//! addresses and content, as every send checks them; a stored template is not looked up and
//! no domain or suppression rule applies. Since anyone may call it, its cost is bounded per
//! client address (`compat.postmark_test_token_per_ip_per_minute`, through the gate's
//! limiter) and by the body limit; it touches neither Postgres nor the queue. With the bound
//! at 0 the token is refused as any unknown token.

use std::net::{IpAddr, Ipv4Addr};

use axum::{
    body::Bytes,
    extract::{FromRequest, MatchedPath, Request, State},
    http::StatusCode,
    middleware::Next,
    response::Response,
};
use serde_json::Value;

use super::{
    TOKEN_HEADER,
    errors::error,
    mapping::{Kind, Sent},
    request::{Message, TemplateBatch},
};
use crate::{
    api::{
        AppState,
        compat::{
            batch::{check_size, read_item},
            shared::{answer, charged},
        },
        error::ServiceError,
        extract::{body_error, check_json_content_type, parse_json, parse_json_object},
        gate::client_ip,
    },
    submission::Draft,
};

/// Postmark's token for requests that are checked and not sent.
pub const TEST_TOKEN: &str = "POSTMARK_API_TEST";

/// Answers requests with the test token; any other goes on to the gate.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let per_minute = state.config.compat.postmark_test_token_per_ip_per_minute;
    let is_test = request
        .headers()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim() == TEST_TOKEN);
    if !is_test || per_minute == 0 {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().trim_end_matches('/').to_string())
        .unwrap_or_default();
    // Driven without a socket (oneshot tests) there is no client: one shared bucket.
    let ip = client_ip(&state, &request);
    if let Err(err) = state.gate.admit(ip) {
        return error(err);
    }
    let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let decision = match state
        .gate
        .charge_client("postmark test token", ip, per_minute)
        .await
    {
        Ok(decision) => decision,
        Err(err) => return error(err),
    };
    let headers = request.headers().clone();
    let body = match check_json_content_type(&headers) {
        Ok(()) => Bytes::from_request(request, &state)
            .await
            .map_err(body_error),
        Err(err) => Err(err),
    };
    let max_schedule = chrono::Duration::days(state.config.http.max_schedule_days);
    let checked = body.and_then(|body| match route.as_str() {
        "/email" => Ok(Checked::One(one(&body, Kind::Content, max_schedule)?)),
        "/email/withTemplate" => Ok(Checked::One(one(&body, Kind::Template, max_schedule)?)),
        "/email/batch" => {
            let items = parse_json::<Vec<Value>>(&body)?;
            Ok(Checked::Many(many(items, Kind::Content, max_schedule)?))
        }
        "/email/batchWithTemplates" => {
            let items = parse_json_object::<TemplateBatch>(&body)?.messages;
            Ok(Checked::Many(many(items, Kind::Template, max_schedule)?))
        }
        other => Err(ServiceError::Internal(anyhow::anyhow!(
            "no test-token handling for Postmark route {other}"
        ))),
    });
    let mut response = match checked {
        Ok(Checked::One(sent)) => answer(StatusCode::OK, &sent, &[]),
        Ok(Checked::Many(sent)) => answer(StatusCode::OK, &sent, &[]),
        Err(err) => error(err),
    };
    charged(&mut response, decision);
    response
}

enum Checked {
    One(Sent),
    Many(Vec<Sent>),
}

/// One message checked: its answer, or the error Postmark's route would give.
fn one(body: &[u8], kind: Kind, max_schedule: chrono::Duration) -> Result<Sent, ServiceError> {
    let message: Message = parse_json_object(body)?;
    check(message, kind, max_schedule)
}

/// A batch checked: one answer per message, a refused one with its `ErrorCode`.
fn many(
    items: Vec<Value>,
    kind: Kind,
    max_schedule: chrono::Duration,
) -> Result<Vec<Sent>, ServiceError> {
    check_size::<Message>(items.len())?;
    Ok(items
        .into_iter()
        .map(|item| {
            let to = item
                .get("To")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            read_item::<Message>(item, || "body".into(), |at| at)
                .and_then(|message| check(message, kind, max_schedule))
                .unwrap_or_else(|err| Sent::refused(to, &err))
        })
        .collect())
}

/// Checks a message as a send does, short of what needs a project: for a template send,
/// that a template is named, not its content.
fn check(
    message: Message,
    kind: Kind,
    max_schedule: chrono::Duration,
) -> Result<Sent, ServiceError> {
    let to = message.to.clone().unwrap_or_default();
    let mut request = message.into_request(kind)?;
    if kind == Kind::Template {
        request.template = None;
        request.variables = None;
        let placeholder = || Some("(the stored template's)".to_string());
        let subject = request.subject.take().or_else(placeholder);
        let html = request.html.take();
        let text = request.text.take().or_else(placeholder);
        request.fill(subject, html, text);
    }
    Draft::validate(request, &|_| true, max_schedule).map_err(ServiceError::Validation)?;
    Ok(Sent::tested(to))
}
