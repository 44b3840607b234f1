//! Mailgun's send API: `POST /v3/{domain}/messages`, a multipart (or URL-encoded) form, with
//! `Authorization: Basic base64("api:<key>")`. Answers `200 {"id": "<…@domain>", "message":
//! "Queued. Thank you."}`; errors are `{"message"}` (a bad key the plain-text `Forbidden`),
//! which mailgun.js turns into its `APIError` and mailgun-python returns as the response.

use std::collections::BTreeMap;

use axum::{
    Router,
    body::Bytes,
    extract::{FromRequest, Multipart, Path, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::{address::split_list, json, reshape, warn_ignored};
use crate::{
    api::{
        AppState,
        auth::ProjectKey,
        email_request::{AttachmentRequest, SendRequest},
        error::{FieldError, ServiceError},
        extract::body_error,
        gate::{Admits, Credentials},
    },
    domain::Scope,
    ratelimit::Refusal,
};

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/v3/{domain}/messages", post(send))
        .route("/v3/{domain}/messages/", post(send))
}

pub struct Mailgun;

impl Credentials for Mailgun {
    const ADMITS: Admits = Admits::KeyWithScope(Scope::Send);

    /// The password of Basic `api:<key>`, as the SDKs send it, or a bearer key, as every
    /// other mailgate route takes it.
    fn token(headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, encoded) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = encoded.trim();
            return (!token.is_empty()).then(|| token.to_string());
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let (_, key) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        (!key.is_empty()).then(|| key.to_string())
    }

    fn sends_one(method: &Method, _: &str) -> bool {
        method == Method::POST
    }

    fn error(err: ServiceError) -> Response {
        error(err)
    }
}

/// Options accepted and not acted on: named in `X-Mailgate-Ignored`.
pub(crate) const IGNORED: &[&str] = &[
    "o:tracking-pixel-location-top",
    "o:require-tls",
    "o:skip-verification",
    "o:dkim",
    "o:secondary-dkim",
    "o:secondary-dkim-public",
    "o:sending-ip",
    "o:sending-ip-pool",
    "o:tag-ignored",
    "t:version",
    "t:text",
];

/// A form as sent: text fields by name (repeatable), and files.
#[derive(Default)]
struct Form {
    fields: Vec<(String, String)>,
    files: Vec<File>,
}

struct File {
    /// `attachment` or `inline`.
    field: String,
    filename: String,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

impl Form {
    async fn read(request: Request) -> Result<Form, ServiceError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut form = Form::default();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(request, &())
                .await
                .map_err(|e| ServiceError::MalformedJson(format!("malformed form: {e}")))?;
            while let Some(field) = multipart
                .next_field()
                .await
                .map_err(|e| ServiceError::MalformedJson(format!("malformed form: {e}")))?
            {
                let name = field.name().unwrap_or_default().to_string();
                let filename = field.file_name().map(str::to_string);
                let file_type = field.content_type().map(str::to_string);
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| ServiceError::MalformedJson(format!("malformed form: {e}")))?;
                match filename {
                    Some(filename) if name == "attachment" || name == "inline" => {
                        form.files.push(File {
                            field: name,
                            filename,
                            content_type: file_type,
                            bytes: bytes.to_vec(),
                        })
                    }
                    _ => form.fields.push((
                        name.clone(),
                        String::from_utf8(bytes.to_vec())
                            .map_err(|_| ServiceError::validation(name, "must be UTF-8 text"))?,
                    )),
                }
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = Bytes::from_request(request, &())
                .await
                .map_err(body_error)?;
            form.fields = url::form_urlencoded::parse(&bytes).into_owned().collect();
        } else {
            return Err(ServiceError::UnsupportedMediaType(
                "expected multipart/form-data or application/x-www-form-urlencoded".into(),
            ));
        }
        if let Some((name, _)) = form
            .fields
            .iter()
            .find(|(n, v)| n.contains('\0') || v.contains('\0'))
        {
            return Err(ServiceError::validation(
                name.replace('\0', "\\0"),
                "must not contain NUL characters",
            ));
        }
        Ok(form)
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, name: &str) -> Option<String> {
        self.all(name).last().map(|v| v.to_string())
    }

    /// Every address of a recipient field, repeated or comma-separated.
    fn addresses(&self, name: &str) -> Option<Value> {
        let list: Vec<Value> = self
            .all(name)
            .into_iter()
            .flat_map(split_list)
            .map(Value::String)
            .collect();
        (!list.is_empty()).then_some(Value::Array(list))
    }

    fn ignored(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (name, _) in &self.fields {
            if IGNORED.contains(&name.as_str()) && !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }

    /// A `yes`/`no` option (`true`/`false`, and `htmlonly` for clicks, count too).
    fn flag(&self, name: &str) -> Option<bool> {
        match self.one(name)?.to_ascii_lowercase().as_str() {
            "yes" | "true" | "htmlonly" => Some(true),
            "no" | "false" => Some(false),
            _ => None,
        }
    }

    fn test_mode(&self) -> bool {
        self.one("o:testmode")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true"))
    }

    /// The native request, or every field that cannot be mapped.
    fn into_request(self) -> Result<SendRequest, ServiceError> {
        let mut errors = Vec::new();
        let mut headers = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        let mut reply_to = None;
        let known = [
            "from",
            "to",
            "cc",
            "bcc",
            "subject",
            "text",
            "html",
            "o:tag",
            "o:testmode",
            "o:deliverytime",
            "template",
            "t:variables",
            "o:tracking",
            "o:tracking-opens",
            "o:tracking-clicks",
        ];
        for (name, value) in &self.fields {
            if let Some(header) = name.strip_prefix("h:") {
                if header.eq_ignore_ascii_case("reply-to") {
                    reply_to = Some(Value::Array(
                        split_list(value).into_iter().map(Value::String).collect(),
                    ));
                } else {
                    headers.insert(header.to_string(), value.clone());
                }
            } else if let Some(var) = name.strip_prefix("v:") {
                metadata.insert(var.to_string(), value.clone());
            } else if !known.contains(&name.as_str()) && !IGNORED.contains(&name.as_str()) {
                errors.push(FieldError::new(
                    name.clone(),
                    match name.as_str() {
                        "recipient-variables" => {
                            "batch sending with recipient-variables is not supported: send one message per recipient"
                        }
                        "amp-html" => "AMP parts are not supported",
                        _ => "is not a field mailgate knows; nothing was sent",
                    },
                ));
            }
        }
        let send_at =
            self.one("o:deliverytime").and_then(|raw| {
                match DateTime::parse_from_rfc2822(raw.trim()) {
                    Ok(t) => Some(
                        t.with_timezone(&Utc)
                            .to_rfc3339_opts(SecondsFormat::Secs, true),
                    ),
                    Err(e) => {
                        errors.push(FieldError::new(
                            "o:deliverytime",
                            format!("is not an RFC 2822 time: {e}"),
                        ));
                        None
                    }
                }
            });
        let variables = match self.one("t:variables") {
            None => None,
            Some(raw) => match serde_json::from_str::<Value>(&raw) {
                Ok(v) if v.is_object() => Some(v),
                _ => {
                    errors.push(FieldError::new("t:variables", "must be a JSON object"));
                    None
                }
            },
        };
        let attachments: Vec<AttachmentRequest> = self
            .files
            .iter()
            .map(|f| AttachmentRequest {
                filename: f.filename.clone(),
                content: base64::engine::general_purpose::STANDARD.encode(&f.bytes),
                content_type: f.content_type.clone(),
                // Mailgun references inline files by their name: `cid:logo.png`.
                content_id: (f.field == "inline").then(|| f.filename.clone()),
            })
            .collect();
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let tags = self.all("o:tag");
        Ok(SendRequest {
            from: self.one("from").map(Value::String).unwrap_or(Value::Null),
            to: self.addresses("to"),
            cc: self.addresses("cc"),
            bcc: self.addresses("bcc"),
            reply_to,
            subject: self.one("subject"),
            text: self.one("text"),
            html: self.one("html"),
            template: self.one("template"),
            variables,
            headers: (!headers.is_empty()).then_some(headers),
            attachments: (!attachments.is_empty()).then_some(attachments),
            tags: (!tags.is_empty()).then(|| tags.into_iter().map(str::to_string).collect()),
            metadata: (!metadata.is_empty()).then_some(metadata),
            relay: None,
            send_at,
            track: super::track(
                self.flag("o:tracking-opens").or(self.flag("o:tracking")),
                self.flag("o:tracking-clicks").or(self.flag("o:tracking")),
            ),
        })
    }
}

/// An error as Mailgun answers it: `{"message"}`, but a bad key is the plain-text
/// `Forbidden`.
pub fn error(err: ServiceError) -> Response {
    if matches!(err, ServiceError::Unauthorized(_)) {
        let mut response = (StatusCode::UNAUTHORIZED, "Forbidden").into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return response;
    }
    reshape(
        err,
        |f| f.to_string(),
        |err, message| (status_of(err), json!({"message": message})),
    )
}

fn status_of(err: &ServiceError) -> StatusCode {
    match err {
        ServiceError::Validation(_)
        | ServiceError::Unprocessable { .. }
        | ServiceError::TemplateNotFound { .. }
        | ServiceError::MalformedJson(_)
        | ServiceError::Conflict { .. }
        | ServiceError::UnsupportedMediaType(_) => StatusCode::BAD_REQUEST,
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

/// Mailgun's answer to a send.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = MailgunQueued)]
pub struct Queued {
    /// `<mailgate id@domain>`.
    pub id: String,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = MailgunError)]
pub struct ErrorBody {
    pub message: String,
}

/// The form fields of a send, as the spec shows them (repeatable ones as arrays).
#[derive(utoipa::ToSchema)]
#[schema(as = MailgunMessage)]
#[allow(dead_code)]
pub struct MessageForm {
    from: String,
    /// Repeated or comma-separated.
    to: Option<Vec<String>>,
    cc: Option<Vec<String>>,
    bcc: Option<Vec<String>>,
    /// Required without `template`; one line.
    #[schema(max_length = 998, pattern = r"^[^\r\n]*$")]
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    #[schema(format = Binary)]
    attachment: Option<Vec<String>>,
    /// Inline files, referenced from the HTML as `cid:<file name>`.
    #[schema(format = Binary)]
    inline: Option<Vec<String>>,
    /// A stored mailgate template's name.
    template: Option<String>,
    /// The template's variables, a JSON object; only with `template`.
    #[schema(rename = "t:variables", pattern = r"^\s*\{[\s\S]*\}\s*$")]
    t_variables: Option<String>,
    /// Tags, up to 10.
    #[schema(rename = "o:tag", max_items = 10, value_type = Option<Vec<crate::api::email_request::Tag>>)]
    o_tag: Option<Vec<String>>,
    /// `yes`: checked and not sent.
    #[schema(rename = "o:testmode")]
    o_testmode: Option<String>,
    /// `yes`/`no` (or `true`/`false`): track opens and clicks.
    #[schema(rename = "o:tracking")]
    o_tracking: Option<String>,
    /// `yes`/`no`: track opens.
    #[schema(rename = "o:tracking-opens")]
    o_tracking_opens: Option<String>,
    /// `yes`/`no`/`htmlonly`: track clicks.
    #[schema(rename = "o:tracking-clicks")]
    o_tracking_clicks: Option<String>,
    /// RFC 2822 time to send at; a weekday, if given, must be the date's.
    #[schema(
        rename = "o:deliverytime",
        pattern = r"^((Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(0?[1-9]|[12][0-9]|3[01]) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} ([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])? ([+-]([01][0-9]|2[0-3])[0-5][0-9]|GMT|UT)$"
    )]
    o_deliverytime: Option<String>,
}

/// Every error a Mailgun route answers, in Mailgun's shape.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum MailgunErrors {
    #[response(status = 400, description = "Invalid fields, or not a form")]
    BadRequest(ErrorBody),
    #[response(
        status = 401,
        description = "Missing, unknown or revoked key (plain text `Forbidden`)",
        content_type = "text/plain"
    )]
    Unauthorized(String),
    #[response(status = 403, description = "The key lacks the `send` scope")]
    Forbidden(ErrorBody),
    #[response(status = 413, description = "Too large")]
    TooLarge(ErrorBody),
    #[response(status = 429, description = "Rate limit or quota")]
    TooManyRequests(ErrorBody),
    #[response(status = 503, description = "Database or rate limiter unavailable")]
    Unavailable(ErrorBody),
}

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
            state.submissions.prepare(&key, request).await?.id
        } else {
            state.submissions.submit(&key, request).await?.id
        };
        Ok::<_, ServiceError>((id, ignored))
    };
    match sent.await {
        Ok((id, ignored)) => {
            let domain: String = domain
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            let queued = Queued {
                id: format!("<{id}@{domain}>"),
                message: "Queued. Thank you.".into(),
            };
            let mut response = json(
                StatusCode::OK,
                &serde_json::to_value(queued).unwrap_or_default(),
            );
            warn_ignored(&mut response, &ignored);
            response
        }
        Err(err) => error(err),
    }
}
