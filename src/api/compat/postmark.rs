//! Postmark's send API: `POST /email`, `/email/batch`, `/email/withTemplate` and
//! `/email/batchWithTemplates` (each also with a trailing slash, which postmarker adds), with
//! `X-Postmark-Server-Token: <key>`. Errors are `{"ErrorCode", "Message"}` with Postmark's
//! statuses: the SDKs choose their exception class by the code (10 bad token, 300 invalid
//! request) and the status (401, 422, 429).

use std::collections::BTreeMap;

use axum::{
    Router,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, Method, StatusCode},
    response::Response,
    routing::post,
};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{address::list_value, describe, ignored_in, json, json_body, reshape, warn_ignored};
use crate::{
    api::{
        AppState,
        auth::ProjectKey,
        email_request::{AttachmentRequest, SendRequest},
        error::ServiceError,
        extract::{parse_json, parse_json_object},
        gate::{Admits, Credentials},
    },
    domain::Scope,
    ratelimit::Refusal,
    service::emails,
    submission::Accepted,
};

pub fn router() -> axum::Router<AppState> {
    let mut router = Router::new();
    for (path, handler) in [
        ("/email", post(send)),
        ("/email/batch", post(send_batch)),
        ("/email/withTemplate", post(send_with_template)),
        ("/email/batchWithTemplates", post(send_batch_with_templates)),
    ] {
        router = router
            .route(path, handler.clone())
            .route(&format!("{path}/"), handler);
    }
    router
}

pub struct Postmark;

/// The header the Postmark SDKs send the server token in.
const TOKEN_HEADER: &str = "x-postmark-server-token";

impl Credentials for Postmark {
    const ADMITS: Admits = Admits::KeyWithScope(Scope::Send);

    fn token(headers: &HeaderMap) -> Option<String> {
        let token = headers.get(TOKEN_HEADER)?.to_str().ok()?.trim();
        (!token.is_empty()).then(|| token.to_string())
    }

    fn sends_one(method: &Method, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        method == Method::POST && (path == "/email" || path == "/email/withTemplate")
    }

    fn error(err: ServiceError) -> Response {
        error(err)
    }
}

/// Most messages in one batch, as Postmark allows.
const MAX_BATCH: usize = 500;

/// Fields accepted and not acted on (named in `X-Mailgate-Ignored`) when they ask for
/// something: CSS inlining, text-only link tracking and streams other than `outbound`.
fn ignored(body: &Value) -> Vec<String> {
    let mut out = ignored_in(body, &["InlineCss"]);
    if body.get("TrackLinks").and_then(Value::as_str) == Some("TextOnly") {
        out.push("TrackLinks".into());
    }
    if let Some(stream) = body.get("MessageStream").and_then(Value::as_str)
        && stream != "outbound"
    {
        out.push("MessageStream".into());
    }
    out
}

/// One message as the Postmark SDKs send it (PascalCase). postmarker sends `null` for every
/// unset field and postmark-python empty lists; both mean "not given".
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
#[schema(as = PostmarkMessage)]
pub struct Message {
    /// `"Name <address>"` or an address.
    #[serde(default)]
    pub from: Option<String>,
    /// Comma-separated addresses, up to 50 in To, Cc and Bcc together.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub cc: Option<String>,
    #[serde(default)]
    pub bcc: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Required with content (`/email`), not given with a template; one line.
    #[serde(default)]
    #[schema(max_length = 998, pattern = r"^[^\r\n]*$")]
    pub subject: Option<String>,
    #[serde(default)]
    pub html_body: Option<String>,
    #[serde(default)]
    pub text_body: Option<String>,
    /// Becomes the message's one tag: letters, digits, `-`, `_`, `.` and `:`.
    #[serde(default)]
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9_.:-]*$")]
    pub tag: Option<String>,
    #[serde(default)]
    pub headers: Option<Vec<Header>>,
    #[serde(default)]
    pub attachments: Option<Vec<Attachment>>,
    #[serde(default)]
    #[schema(value_type = Option<HashMap<crate::api::email_request::MetadataKey, crate::api::email_request::MetadataValue>>)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// The send's `track.opens`.
    #[serde(default)]
    pub track_opens: Option<bool>,
    /// `None` or not: the send's `track.clicks` (links of the HTML part are tracked).
    #[serde(default)]
    pub track_links: Option<String>,
    /// `outbound`; any other stream is sent the same way and named in `X-Mailgate-Ignored`.
    #[serde(default)]
    pub message_stream: Option<String>,
    /// With `/email/withTemplate`: the stored template named by this number.
    #[serde(default)]
    pub template_id: Option<i64>,
    /// With `/email/withTemplate`: the stored template's name.
    #[serde(default)]
    pub template_alias: Option<String>,
    /// The template's variables.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub template_model: Option<Value>,
    /// Ignored: templates render as stored.
    #[serde(default)]
    pub inline_css: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
#[schema(as = PostmarkHeader)]
pub struct Header {
    #[schema(value_type = crate::api::email_request::HeaderName)]
    pub name: String,
    #[schema(value_type = crate::api::email_request::HeaderValue)]
    pub value: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
#[schema(as = PostmarkAttachment)]
pub struct Attachment {
    pub name: String,
    /// Base64.
    pub content: String,
    #[serde(default)]
    pub content_type: Option<String>,
    /// `cid:logo` or `logo`: makes the part inline.
    #[serde(default, rename = "ContentID")]
    pub content_id: Option<String>,
    /// Ignored: the length of `Content`, as postmark-python may send it.
    #[serde(default)]
    pub content_length: Option<u64>,
}

/// The body of `/email/batchWithTemplates`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
#[schema(as = PostmarkTemplateBatch)]
pub struct TemplateBatch {
    #[schema(value_type = MessageBatch)]
    pub messages: Vec<Value>,
}

/// Whether a route sends a stored template or content given in the request.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Content,
    Template,
}

impl Message {
    fn into_request(self, kind: Kind) -> Result<SendRequest, ServiceError> {
        let template = match (self.template_id, self.template_alias) {
            (Some(id), _) => Some(id.to_string()),
            (None, alias) => alias,
        };
        match (kind, &template) {
            (Kind::Content, Some(_)) => {
                return Err(ServiceError::validation(
                    "template",
                    "send templates through /email/withTemplate",
                ));
            }
            (Kind::Template, None) => {
                return Err(ServiceError::validation("template", "is required"));
            }
            _ => {}
        }
        let headers = self.headers.map(|list| {
            list.into_iter()
                .map(|h| (h.name, h.value))
                .collect::<BTreeMap<_, _>>()
        });
        let attachments = self.attachments.map(|list| {
            list.into_iter()
                .map(|a| AttachmentRequest {
                    filename: a.name,
                    content: a.content,
                    content_type: a.content_type,
                    content_id: a
                        .content_id
                        .map(|cid| cid.strip_prefix("cid:").unwrap_or(&cid).to_string()),
                })
                .collect()
        });
        Ok(SendRequest {
            from: self.from.map(Value::String).unwrap_or(Value::Null),
            to: list_value(self.to.as_deref()),
            cc: list_value(self.cc.as_deref()),
            bcc: list_value(self.bcc.as_deref()),
            reply_to: list_value(self.reply_to.as_deref()),
            subject: self.subject,
            text: self.text_body,
            html: self.html_body,
            variables: if template.is_some() {
                self.template_model
            } else {
                None
            },
            template,
            headers: headers.filter(|h| !h.is_empty()),
            attachments: attachments.filter(|a: &Vec<_>| !a.is_empty()),
            tags: self.tag.filter(|t| !t.is_empty()).map(|t| vec![t]),
            metadata: self.metadata.filter(|m| !m.is_empty()),
            relay: None,
            send_at: None,
            track: super::track(
                self.track_opens,
                // mailgate tracks the links of the HTML part.
                self.track_links.as_deref().map(|links| links != "None"),
            ),
        })
    }
}

/// Postmark's name for a native field path (`to[1]` is `To[1]`).
fn field(native: &str) -> String {
    let split = native.find(['.', '[']).unwrap_or(native.len());
    let (head, rest) = native.split_at(split);
    let name = match head {
        "from" => "From",
        "to" => "To",
        "cc" => "Cc",
        "bcc" => "Bcc",
        "reply_to" => "ReplyTo",
        "subject" => "Subject",
        "html" => "HtmlBody",
        "text" => "TextBody",
        "headers" => "Headers",
        "attachments" => "Attachments",
        "tags" => "Tag",
        "metadata" => "Metadata",
        "template" => "TemplateAlias",
        "variables" => "TemplateModel",
        other => other,
    };
    format!("{name}{rest}")
}

/// Postmark's status and `ErrorCode` for an error.
fn status_and_code(err: &ServiceError) -> (StatusCode, u16) {
    match err {
        ServiceError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, 300),
        ServiceError::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, 300),
        ServiceError::TemplateNotFound { .. } => (StatusCode::UNPROCESSABLE_ENTITY, 1101),
        // 402: invalid JSON; 409: JSON required.
        ServiceError::MalformedJson(_) => (StatusCode::UNPROCESSABLE_ENTITY, 402),
        ServiceError::UnsupportedMediaType(_) => (StatusCode::UNPROCESSABLE_ENTITY, 409),
        ServiceError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 300),
        // 10: bad or missing server token.
        ServiceError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, 10),
        // 405: not allowed to send.
        ServiceError::ForbiddenScope(_) => (StatusCode::UNPROCESSABLE_ENTITY, 405),
        ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, 0),
        ServiceError::Conflict { .. } => (StatusCode::CONFLICT, 0),
        ServiceError::Refused(Refusal::Unavailable) | ServiceError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, 0)
        }
        ServiceError::Refused(_) | ServiceError::AuthThrottled(_) => {
            (StatusCode::TOO_MANY_REQUESTS, 429)
        }
        ServiceError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 0),
    }
}

/// An error as Postmark answers it.
pub fn error(err: ServiceError) -> Response {
    reshape(err, field, |err, message| {
        let (status, code) = status_and_code(err);
        (status, json!({"ErrorCode": code, "Message": message}))
    })
}

/// Postmark's answer for one message, accepted (`ErrorCode` 0) or not: postmark-python
/// requires all five fields, in every item of a batch too.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = PostmarkSent)]
pub struct Sent {
    pub to: String,
    pub submitted_at: String,
    /// The mailgate id (works with `GET /v1/emails/{id}`); empty when refused.
    #[serde(rename = "MessageID")]
    pub message_id: String,
    pub error_code: u16,
    pub message: String,
}

impl Sent {
    fn accepted(to: String, accepted: &Accepted) -> Self {
        Sent {
            to,
            submitted_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, false),
            message_id: accepted.id.to_string(),
            error_code: 0,
            message: "OK".into(),
        }
    }

    fn refused(to: String, err: &ServiceError) -> Self {
        Sent {
            to,
            submitted_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, false),
            message_id: String::new(),
            error_code: status_and_code(err).1,
            message: describe(&err.to_problem(), field),
        }
    }
}

/// The error as `{ErrorCode, Message}`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = PostmarkError)]
pub struct ErrorBody {
    pub error_code: u16,
    pub message: String,
}

/// Every error a Postmark route answers, in Postmark's shape.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum PostmarkErrors {
    #[response(
        status = 401,
        description = "Missing or invalid server token (ErrorCode 10)"
    )]
    Unauthorized(ErrorBody),
    #[response(status = 413, description = "Message too large (ErrorCode 300)")]
    TooLarge(ErrorBody),
    #[response(
        status = 422,
        description = "Invalid request (300), template not found (1101), invalid JSON (402), JSON required (409), key without the `send` scope (405)"
    )]
    Unprocessable(ErrorBody),
    #[response(status = 429, description = "Rate limit or quota (ErrorCode 429)")]
    TooManyRequests(ErrorBody),
    #[response(status = 503, description = "Database or rate limiter unavailable")]
    Unavailable(ErrorBody),
}

async fn send_one(
    state: &AppState,
    key: &crate::store::api_keys::AuthenticatedKey,
    body: &[u8],
    kind: Kind,
) -> Result<(String, Accepted), ServiceError> {
    let message: Message = parse_json_object(body)?;
    let to = message.to.clone().unwrap_or_default();
    let request = message.into_request(kind)?;
    Ok((to, state.submissions.submit(key, request).await?))
}

async fn single(
    state: AppState,
    key: crate::store::api_keys::AuthenticatedKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: Kind,
) -> Response {
    let body = match json_body(&headers, body) {
        Ok(body) => body,
        Err(err) => return error(err),
    };
    match send_one(&state, &key, &body, kind).await {
        Ok((to, accepted)) => {
            let sent = Sent::accepted(to, &accepted);
            let mut response = json(
                StatusCode::OK,
                &serde_json::to_value(sent).unwrap_or_default(),
            );
            if let Ok(value) = serde_json::from_slice::<Value>(&body) {
                warn_ignored(&mut response, &ignored(&value));
            }
            response
        }
        Err(err) => error(err),
    }
}

async fn batch(
    state: AppState,
    key: crate::store::api_keys::AuthenticatedKey,
    items: Vec<Value>,
    kind: Kind,
) -> Response {
    if items.is_empty() || items.len() > MAX_BATCH {
        return error(ServiceError::validation(
            "body",
            format!(
                "a batch holds 1 to {MAX_BATCH} messages, not {}",
                items.len()
            ),
        ));
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
            if !item.is_object() {
                return Err(ServiceError::validation("body", "must be a JSON object"));
            }
            serde_path_to_error::deserialize::<_, Message>(item)
                .map_err(|e| ServiceError::validation(e.path().to_string(), e.inner().to_string()))?
                .into_request(kind)
        })
        .collect();
    let prepared = emails::prepare_batch(&state, &key, drafts).await;
    let (answers, decision) = match emails::commit_batch(&state, &key, prepared).await {
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
    let mut response = json(
        StatusCode::OK,
        &serde_json::to_value(results).unwrap_or_default(),
    );
    if let Some(d) = decision {
        crate::api::headers::write_headers(&d, response.headers_mut());
    }
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
pub async fn send(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    single(state, key, headers, body, Kind::Content).await
}

/// Send an email with a stored template (Postmark).
///
/// `TemplateAlias` (or `TemplateId`, as a number) names a stored mailgate template;
/// `TemplateModel` holds its variables.
#[utoipa::path(post, path = "/email/withTemplate", operation_id = "postmark_send_with_template", tag = "postmark",
    request_body = Message,
    responses((status = 200, description = "Accepted and committed", body = Sent), PostmarkErrors),
    security(("postmark_token" = [])))]
pub async fn send_with_template(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    single(state, key, headers, body, Kind::Template).await
}

/// Send up to 500 emails (Postmark).
///
/// Answers 200 with one result per message, in order; a refused one has a non-zero
/// `ErrorCode`.
#[utoipa::path(post, path = "/email/batch", operation_id = "postmark_send_batch", tag = "postmark",
    request_body = MessageBatch,
    responses((status = 200, description = "One result per message", body = Vec<Sent>), PostmarkErrors),
    security(("postmark_token" = [])))]
pub async fn send_batch(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let items = json_body(&headers, body).and_then(|body| parse_json::<Vec<Value>>(&body));
    match items {
        Ok(items) => batch(state, key, items, Kind::Content).await,
        Err(err) => error(err),
    }
}

/// Send up to 500 emails with stored templates (Postmark).
#[utoipa::path(post, path = "/email/batchWithTemplates", operation_id = "postmark_send_batch_with_templates", tag = "postmark",
    request_body = TemplateBatch,
    responses((status = 200, description = "One result per message", body = Vec<Sent>), PostmarkErrors),
    security(("postmark_token" = [])))]
pub async fn send_batch_with_templates(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let items = json_body(&headers, body)
        .and_then(|body| parse_json_object::<TemplateBatch>(&body))
        .map(|b| b.messages);
    match items {
        Ok(items) => batch(state, key, items, Kind::Template).await,
        Err(err) => error(err),
    }
}

/// A Postmark batch in the spec.
pub struct MessageBatch;

impl utoipa::PartialSchema for MessageBatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        super::batch_schema("PostmarkMessage", MAX_BATCH)
    }
}

impl utoipa::ToSchema for MessageBatch {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("PostmarkMessage".into(), Message::schema()));
        <Message as utoipa::ToSchema>::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Track;

    fn message(body: Value) -> Message {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn nulls_lists_and_tracking_map_onto_the_native_request() {
        // postmarker's explicit nulls, a comma-separated To, a cid: ContentID.
        let request = message(json!({
            "From": "a@x.test", "To": "b@x.test, \"Doe, Jo\" <j@x.test>", "Cc": null,
            "Subject": "s", "TextBody": "t", "HtmlBody": null, "TemplateId": null,
            "TrackOpens": true, "TrackLinks": "HtmlAndText",
            "Attachments": [{"Name": "a.png", "Content": "aGk=", "ContentType": "image/png",
                             "ContentID": "cid:logo"}],
        }))
        .into_request(Kind::Content)
        .unwrap();
        assert_eq!(
            request.to,
            Some(json!(["b@x.test", "\"Doe, Jo\" <j@x.test>"]))
        );
        assert_eq!(request.cc, None);
        assert_eq!(
            request.track,
            Some(Track {
                opens: Some(true),
                clicks: Some(true)
            })
        );
        let attachments = request.attachments.unwrap();
        assert_eq!(attachments[0].content_id.as_deref(), Some("logo"));
        let request = message(json!({"From": "a@x.test", "To": "b@x.test", "TrackLinks": "None"}))
            .into_request(Kind::Content)
            .unwrap();
        assert_eq!(
            request.track,
            Some(Track {
                opens: None,
                clicks: Some(false)
            })
        );
    }

    #[test]
    fn templates_only_through_with_template() {
        let with = || message(json!({"From": "a@x.test", "To": "b@x.test", "TemplateId": 7}));
        assert!(with().into_request(Kind::Content).is_err());
        assert_eq!(
            with()
                .into_request(Kind::Template)
                .unwrap()
                .template
                .as_deref(),
            Some("7")
        );
    }
}
