//! SendGrid's v3 send API: `POST /v3/mail/send` with `Authorization: Bearer <key>`. Each
//! personalization is a message of its own; the request is all or nothing, as SendGrid's:
//! one bad personalization refuses it, every problem listed. Answers `202` with an empty body
//! and `X-Message-Id`, or `200` without sending under `mail_settings.sandbox_mode`. Errors are
//! `{"errors": [{"message", "field", "help"}]}`: the SDKs raise by status.

use std::collections::BTreeMap;

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    response::Response,
    routing::post,
};
use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{json_body, reshape, warn_ignored};
use crate::{
    api::{
        AppState,
        auth::{ProjectKey, bearer},
        email_request::{AttachmentRequest, SendRequest},
        error::{FieldError, ServiceError},
        extract::parse_json_object,
        gate::{Admits, Credentials},
    },
    domain::Scope,
    ratelimit::Refusal,
    service::emails,
};

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/v3/mail/send", post(send))
        .route("/v3/mail/send/", post(send))
}

pub struct SendGrid;

impl Credentials for SendGrid {
    const ADMITS: Admits = Admits::KeyWithScope(Scope::Send);

    /// A bearer key; an `SG.` prefix is dropped, so a key can look like SendGrid's (the Node
    /// client warns about keys without it).
    fn token(headers: &HeaderMap) -> Option<String> {
        let token = bearer(headers).ok()?;
        let token = token.strip_prefix("SG.").unwrap_or(token);
        (!token.is_empty()).then(|| token.to_string())
    }

    /// A send may hold many personalizations: it charges them itself.
    fn sends_one(_: &Method, _: &str) -> bool {
        false
    }

    fn error(err: ServiceError) -> Response {
        error(err)
    }
}

/// Header with the ids of every message a send made (one per personalization), beside
/// SendGrid's `X-Message-Id`, which names the first.
pub const MESSAGE_IDS: HeaderName = HeaderName::from_static("x-mailgate-message-ids");

/// Most personalizations in one send, as SendGrid allows.
const MAX_PERSONALIZATIONS: usize = 1000;

/// A mail as the SendGrid SDKs send it (snake_case).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SendGridMail)]
pub struct Mail {
    pub from: Address,
    #[serde(default)]
    pub reply_to: Option<Address>,
    #[serde(default)]
    pub reply_to_list: Option<Vec<Address>>,
    /// Required without `template_id`, unless every personalization has one; one line.
    #[serde(default)]
    pub subject: Option<String>,
    /// One message each, 1 to 1000.
    #[schema(min_items = 1, max_items = 1000)]
    pub personalizations: Vec<Personalization>,
    /// One `text/plain` and one `text/html` part; one not empty is required without
    /// `template_id`.
    #[serde(default)]
    #[schema(max_items = 2)]
    pub content: Option<Vec<Content>>,
    #[serde(default)]
    pub attachments: Option<Vec<Attachment>>,
    /// A stored mailgate template's name (`d-…` names work).
    #[serde(default)]
    pub template_id: Option<String>,
    /// Extra headers, as for `/v1/emails`.
    #[serde(default)]
    #[schema(value_type = Option<HashMap<crate::api::email_request::HeaderName, crate::api::email_request::HeaderValue>>)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Tags, up to 10.
    #[serde(default)]
    #[schema(max_items = 10, value_type = Option<Vec<crate::api::email_request::Tag>>)]
    pub categories: Option<Vec<String>>,
    /// Metadata, with each personalization's.
    #[serde(default)]
    #[schema(value_type = Option<HashMap<crate::api::email_request::MetadataKey, crate::api::email_request::MetadataValue>>)]
    pub custom_args: Option<BTreeMap<String, String>>,
    /// Unix time to send at.
    #[serde(default)]
    pub send_at: Option<i64>,
    /// Accepted and ignored, whatever its value (named in `X-Mailgate-Ignored`).
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub batch_id: Option<Value>,
    /// Accepted and ignored, whatever its value: mailgate has no unsubscribe groups.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub asm: Option<Value>,
    /// Accepted and ignored: relays are chosen by mailgate's configuration.
    #[serde(default)]
    pub ip_pool_name: Option<String>,
    #[serde(default)]
    pub mail_settings: Option<MailSettings>,
    /// `open_tracking.enable` and `click_tracking.enable` are the send's `track`; other
    /// settings are ignored (named in `X-Mailgate-Ignored`).
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub tracking_settings: Option<Value>,
    /// Legacy substitution sections: refused when given (they would change the content).
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub sections: Option<Value>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SendGridAddress)]
pub struct Address {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// At most 200 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SendGridPersonalization)]
pub struct Personalization {
    pub to: Vec<Address>,
    #[serde(default)]
    pub cc: Option<Vec<Address>>,
    #[serde(default)]
    pub bcc: Option<Vec<Address>>,
    #[serde(default)]
    pub from: Option<Address>,
    /// Overrides the mail's; one line.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<HashMap<crate::api::email_request::HeaderName, crate::api::email_request::HeaderValue>>)]
    pub headers: Option<BTreeMap<String, String>>,
    /// The template's variables.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub dynamic_template_data: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<HashMap<crate::api::email_request::MetadataKey, crate::api::email_request::MetadataValue>>)]
    pub custom_args: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub send_at: Option<i64>,
    /// Legacy substitutions: refused when given (they would change the content).
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub substitutions: Option<Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SendGridContent)]
pub struct Content {
    /// `text/plain` or `text/html`.
    #[serde(rename = "type")]
    #[schema(pattern = "^[Tt][Ee][Xx][Tt]/([Pp][Ll][Aa][Ii][Nn]|[Hh][Tt][Mm][Ll])$")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SendGridAttachment)]
pub struct Attachment {
    /// Base64.
    pub content: String,
    pub filename: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `attachment` (default) or `inline`.
    #[serde(default)]
    pub disposition: Option<String>,
    #[serde(default)]
    pub content_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = SendGridMailSettings)]
pub struct MailSettings {
    /// Validate only: answered `200`, nothing sent.
    #[serde(default)]
    pub sandbox_mode: Option<Setting>,
    /// A footer added to the content: refused when enabled.
    #[serde(default)]
    pub footer: Option<Setting>,
    /// Any other setting (`bypass_*`, `spam_check`…) is accepted and ignored.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = SendGridSetting)]
pub struct Setting {
    #[serde(default)]
    pub enable: Option<bool>,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub other: BTreeMap<String, Value>,
}

impl Mail {
    fn sandbox(&self) -> bool {
        self.mail_settings
            .as_ref()
            .and_then(|m| m.sandbox_mode.as_ref())
            .and_then(|s| s.enable)
            .unwrap_or(false)
    }

    /// Fields accepted and not acted on.
    fn ignored(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, given) in [
            ("batch_id", self.batch_id.is_some()),
            ("asm", self.asm.is_some()),
            ("ip_pool_name", self.ip_pool_name.is_some()),
            (
                "tracking_settings",
                self.tracking_settings.as_ref().is_some_and(|t| {
                    t.as_object().is_some_and(|m| {
                        m.keys()
                            .any(|k| k != "open_tracking" && k != "click_tracking")
                    })
                }),
            ),
        ] {
            if given {
                out.push(name.to_string());
            }
        }
        if let Some(settings) = &self.mail_settings {
            out.extend(settings.other.keys().map(|k| format!("mail_settings.{k}")));
        }
        out
    }

    /// One native request per personalization, or every problem of the whole mail.
    fn into_requests(self) -> Result<Vec<SendRequest>, ServiceError> {
        let mut errors = Vec::new();
        let n = self.personalizations.len();
        if n == 0 || n > MAX_PERSONALIZATIONS {
            errors.push(FieldError::new(
                "personalizations",
                format!("1 to {MAX_PERSONALIZATIONS} personalizations, not {n}"),
            ));
        }
        if self.sections.as_ref().is_some_and(not_empty) {
            errors.push(FieldError::new(
                "sections",
                "substitution sections are not supported: use a stored template",
            ));
        }
        if let Some(footer) = self.mail_settings.as_ref().and_then(|m| m.footer.as_ref())
            && footer.enable == Some(true)
        {
            errors.push(FieldError::new(
                "mail_settings.footer",
                "footers are not supported: put the footer in the content or the template",
            ));
        }
        let (mut text, mut html) = (None, None);
        for (i, part) in self.content.unwrap_or_default().into_iter().enumerate() {
            match part.kind.to_ascii_lowercase().as_str() {
                "text/plain" if text.is_none() => text = Some(part.value),
                "text/html" if html.is_none() => html = Some(part.value),
                _ => errors.push(FieldError::new(
                    format!("content.{i}.type"),
                    "one text/plain and one text/html part are supported",
                )),
            }
        }
        let attachments: Vec<AttachmentRequest> = self
            .attachments
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                let inline = a.disposition.as_deref() == Some("inline");
                AttachmentRequest {
                    filename: a.filename,
                    content: a.content,
                    content_type: a.kind,
                    content_id: if inline { a.content_id } else { None },
                }
            })
            .collect();
        let reply_to = match (self.reply_to, self.reply_to_list) {
            (_, Some(list)) if !list.is_empty() => Some(addresses(list)),
            (Some(one), _) => Some(addresses(vec![one])),
            _ => None,
        };
        let mut requests = Vec::with_capacity(n);
        for (i, p) in self.personalizations.into_iter().enumerate() {
            if p.substitutions.as_ref().is_some_and(not_empty) {
                errors.push(FieldError::new(
                    format!("personalizations.{i}.substitutions"),
                    "substitutions are not supported: use dynamic_template_data",
                ));
            }
            let send_at = match p.send_at.or(self.send_at) {
                None => None,
                Some(secs) => match DateTime::from_timestamp(secs, 0) {
                    Some(t) => Some(t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                    None => {
                        errors.push(FieldError::new("send_at", "is not a unix time"));
                        None
                    }
                },
            };
            let mut headers = self.headers.clone().unwrap_or_default();
            headers.extend(p.headers.unwrap_or_default());
            let mut metadata = self.custom_args.clone().unwrap_or_default();
            metadata.extend(p.custom_args.unwrap_or_default());
            let template = self.template_id.clone();
            let setting = |name: &str| self.tracking_settings.as_ref()?[name]["enable"].as_bool();
            requests.push(SendRequest {
                from: serde_json::to_value(p.from.as_ref().unwrap_or(&self.from))
                    .map_err(anyhow::Error::from)?,
                to: Some(addresses(p.to)),
                cc: p.cc.map(addresses),
                bcc: p.bcc.map(addresses),
                reply_to: reply_to.clone(),
                subject: if template.is_some() {
                    None
                } else {
                    p.subject.or_else(|| self.subject.clone())
                },
                text: if template.is_some() {
                    None
                } else {
                    text.clone()
                },
                html: if template.is_some() {
                    None
                } else {
                    html.clone()
                },
                variables: template.as_ref().and(p.dynamic_template_data),
                template,
                headers: (!headers.is_empty()).then_some(headers),
                attachments: (!attachments.is_empty()).then(|| clone_all(&attachments)),
                tags: self.categories.clone().filter(|c| !c.is_empty()),
                metadata: (!metadata.is_empty()).then_some(metadata),
                relay: None,
                send_at,
                track: super::track(setting("open_tracking"), setting("click_tracking")),
            });
        }
        if errors.is_empty() {
            Ok(requests)
        } else {
            Err(ServiceError::Validation(errors))
        }
    }
}

fn not_empty(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Object(map) => !map.is_empty(),
        Value::Array(list) => !list.is_empty(),
        _ => true,
    }
}

fn addresses(list: Vec<Address>) -> Value {
    Value::Array(
        list.into_iter()
            .map(|a| match a.name {
                Some(name) => json!({"email": a.email, "name": name}),
                None => json!({"email": a.email}),
            })
            .collect(),
    )
}

fn clone_all(list: &[AttachmentRequest]) -> Vec<AttachmentRequest> {
    list.iter()
        .map(|a| AttachmentRequest {
            filename: a.filename.clone(),
            content: a.content.clone(),
            content_type: a.content_type.clone(),
            content_id: a.content_id.clone(),
        })
        .collect()
}

/// SendGrid's name for a native field path inside personalization `i`.
fn field_in(i: usize, native: &str) -> String {
    let split = native.find(['.', '[']).unwrap_or(native.len());
    let (head, rest) = native.split_at(split);
    // `to[1]` is `to.1`, as SendGrid writes paths.
    let rest = rest.replace('[', ".").replace(']', "");
    match head {
        "to" | "cc" | "bcc" => format!("personalizations.{i}.{head}{rest}"),
        "variables" => format!("personalizations.{i}.dynamic_template_data{rest}"),
        "html" | "text" => "content".into(),
        "tags" => format!("categories{rest}"),
        "metadata" => format!("custom_args{rest}"),
        "template" => "template_id".into(),
        other => format!("{other}{rest}"),
    }
}

fn status_of(err: &ServiceError) -> StatusCode {
    match err {
        ServiceError::Validation(_)
        | ServiceError::Unprocessable { .. }
        | ServiceError::TemplateNotFound { .. }
        | ServiceError::MalformedJson(_)
        | ServiceError::Conflict { .. } => StatusCode::BAD_REQUEST,
        ServiceError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ServiceError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        ServiceError::ForbiddenScope(_) => StatusCode::FORBIDDEN,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ServiceError::Refused(Refusal::Unavailable) | ServiceError::Unavailable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ServiceError::Refused(_) | ServiceError::AuthThrottled(_) => StatusCode::TOO_MANY_REQUESTS,
        ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// SendGrid's error body: one entry per bad field.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = SendGridErrors)]
pub struct ErrorBody {
    pub errors: Vec<ErrorItem>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = SendGridError)]
pub struct ErrorItem {
    pub message: String,
    pub field: Option<String>,
    pub help: Option<String>,
}

/// An error as SendGrid answers it. With `Some(i)`, its fields are native paths of
/// personalization `i`'s message and are named as SendGrid names them; otherwise they are
/// named already.
fn error_at(at: Option<usize>, err: ServiceError) -> Response {
    let fields: Option<Vec<FieldError>> = err.field_errors();
    reshape(
        err,
        |f| f.to_string(),
        |err, message| {
            let errors = match fields {
                Some(list) => list
                    .into_iter()
                    .map(|e| ErrorItem {
                        field: Some(match at {
                            Some(i) => field_in(i, &e.field),
                            None => e.field,
                        }),
                        message: e.message,
                        help: None,
                    })
                    .collect(),
                None => vec![ErrorItem {
                    message: match err {
                        ServiceError::Unauthorized(_) => {
                            "The provided authorization grant is invalid, expired, or revoked"
                                .into()
                        }
                        _ => message,
                    },
                    field: None,
                    help: None,
                }],
            };
            (
                status_of(err),
                serde_json::to_value(ErrorBody { errors }).unwrap_or_default(),
            )
        },
    )
}

pub fn error(err: ServiceError) -> Response {
    error_at(None, err)
}

/// Every error `/v3/mail/send` answers, in SendGrid's shape.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum SendGridErrors {
    #[response(status = 400, description = "Invalid fields, each named")]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "Missing, unknown or revoked key")]
    Unauthorized(ErrorBody),
    #[response(status = 403, description = "The key lacks the `send` scope")]
    Forbidden(ErrorBody),
    #[response(status = 413, description = "Too large")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Not JSON")]
    UnsupportedMediaType(ErrorBody),
    #[response(status = 429, description = "Rate limit or quota")]
    TooManyRequests(ErrorBody),
    #[response(status = 503, description = "Database or rate limiter unavailable")]
    Unavailable(ErrorBody),
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
pub async fn send(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mail: Mail = match json_body(&headers, body).and_then(|b| parse_json_object(&b)) {
        Ok(mail) => mail,
        Err(err) => return error(err),
    };
    let (sandbox, ignored) = (mail.sandbox(), mail.ignored());
    let requests = match mail.into_requests() {
        Ok(requests) => requests,
        Err(err) => return error(err),
    };
    let prepared =
        emails::prepare_batch(&state, &key, requests.into_iter().map(Ok).collect()).await;
    // All or nothing: the first bad personalization refuses the mail.
    if let Some(i) = prepared.iter().position(Result::is_err) {
        let err = prepared.into_iter().nth(i).and_then(Result::err);
        return error_at(Some(i), err.expect("an error at i"));
    }
    let mut response = if sandbox {
        Response::builder()
            .status(StatusCode::OK)
            .body(Body::empty())
            .expect("static response")
    } else {
        let (answers, decision) = match emails::commit_batch(&state, &key, prepared).await {
            Ok(done) => done,
            Err(err) => return error(err),
        };
        let ids: Vec<String> = answers
            .into_iter()
            .filter_map(Result::ok)
            .map(|a| a.id.to_string())
            .collect();
        let mut response = Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Body::empty())
            .expect("static response");
        if let Some(first) = ids.first()
            && let Ok(value) = HeaderValue::from_str(first)
        {
            response.headers_mut().insert("x-message-id", value);
        }
        if let Ok(value) = HeaderValue::from_str(&ids.join(", ")) {
            response.headers_mut().insert(MESSAGE_IDS, value);
        }
        if let Some(d) = decision {
            crate::api::headers::write_headers(&d, response.headers_mut());
        }
        response
    };
    warn_ignored(&mut response, &ignored);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Track;

    #[test]
    fn each_personalization_is_a_message_with_its_overrides() {
        let mail: Mail = serde_json::from_value(json!({
            "from": {"email": "a@x.test"}, "subject": "all",
            "personalizations": [
                {"to": [{"email": "b@x.test"}], "custom_args": {"n": "1"}},
                {"to": [{"email": "c@x.test", "name": "C"}], "subject": "mine", "send_at": 1893456000}
            ],
            "content": [{"type": "text/plain", "value": "t"}],
            "custom_args": {"n": "0", "k": "v"}, "categories": ["welcome"],
            "tracking_settings": {"open_tracking": {"enable": true}, "ganalytics": {"enable": true}}
        }))
        .unwrap();
        assert_eq!(mail.ignored(), ["tracking_settings"]);
        let requests = mail.into_requests().unwrap();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].subject.as_deref(), Some("all"));
        assert_eq!(requests[1].subject.as_deref(), Some("mine"));
        assert_eq!(requests[0].metadata.as_ref().unwrap()["n"], "1");
        assert_eq!(requests[0].metadata.as_ref().unwrap()["k"], "v");
        assert_eq!(requests[1].send_at.as_deref(), Some("2030-01-01T00:00:00Z"));
        assert_eq!(
            requests[1].track,
            Some(Track {
                opens: Some(true),
                clicks: None
            })
        );
    }

    #[test]
    fn content_changing_fields_are_refused_by_name() {
        let mail: Mail = serde_json::from_value(json!({
            "from": {"email": "a@x.test"},
            "personalizations": [{"to": [{"email": "b@x.test"}], "substitutions": {"-n-": "1"}}],
            "mail_settings": {"footer": {"enable": true, "text": "bye"}}
        }))
        .unwrap();
        let Err(ServiceError::Validation(errors)) = mail.into_requests() else {
            panic!("refused")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["mail_settings.footer", "personalizations.0.substitutions"]
        );
    }
}
