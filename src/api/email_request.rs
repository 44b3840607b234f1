//! The JSON body of a send (`POST /v1/emails`, each item of a batch), as clients write it, and
//! its checking into a [`NewEmail`]: every problem at once, each named by its JSON path.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, OnceLock},
};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::{
    Attachment, EmailAddress, FieldError, Mailbox, NewEmail, Track,
    email::MAX_RECIPIENTS,
    field_checks::{check_headers, check_metadata, check_tags},
    has_line_break,
};
use crate::submission::Draft;

/// A bare address, `user@example.com`. Internationalized addresses (RFC 6531) are accepted
/// too: a Unicode domain (`ada@bücher.example`) is valid IDNA (UTS 46) and travels in
/// A-labels (`ada@xn--bcher-kva.example`), needing nothing of the relay; a UTF-8 local part
/// (`josé@bücher.example`, `用户@例子.中国`) is relayed with SMTPUTF8, and bounces with
/// `5.6.7` when the relay does not offer it. A domain that is not valid IDNA is a 422 naming
/// the field.
#[derive(utoipa::ToSchema, Deserialize)]
#[allow(dead_code)]
#[schema(format = Email, max_length = 254)]
pub struct AddrSpecDoc(String);

/// A display name and an address, `Name <user@example.com>`. The pattern is the plain form;
/// the name may also be quoted or hold other printable characters.
#[derive(utoipa::ToSchema, Deserialize)]
#[allow(dead_code)]
#[schema(
    pattern = r"^[A-Za-z0-9 ]{0,64}<[A-Za-z0-9_%+-]{1,64}@[A-Za-z0-9]{1,20}(\.[A-Za-z0-9]{1,20}){0,3}\.[A-Za-z]{2,20}>$"
)]
pub struct NameAddrDoc(String);

/// An address as `"Name <user@example.com>"`, `"user@example.com"` or `{email, name}`; the
/// address may be internationalized (see `AddrSpecDoc`).
#[derive(utoipa::ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum AddressDoc {
    Address(AddrSpecDoc),
    NameAddr(NameAddrDoc),
    Object(MailboxDoc),
}

/// `{email, name}`.
#[derive(utoipa::ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct MailboxDoc {
    /// `user@example.com`, or internationalized (`josé@bücher.example`; see `AddrSpecDoc`).
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// At most 200 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    name: Option<String>,
}

/// One address or a list of them.
#[derive(utoipa::ToSchema, Deserialize)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum AddressesDoc {
    One(AddressDoc),
    Many(AddressListDoc),
}

/// Up to 50 addresses.
#[derive(utoipa::ToSchema, Deserialize)]
#[allow(dead_code)]
#[schema(max_items = 50)]
pub struct AddressListDoc(Vec<AddressDoc>);

/// The JSON body of `POST /v1/emails`, as sent. Addresses stay raw JSON so each
/// bad one can be reported by its own path.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The sender.
    #[schema(value_type = AddressDoc)]
    pub from: Value,
    /// 1 to 50 recipients in to, cc and bcc together.
    #[serde(default)]
    #[schema(value_type = Option<AddressesDoc>)]
    pub to: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<AddressesDoc>)]
    pub cc: Option<Value>,
    /// Relayed to, never shown in the headers.
    #[serde(default)]
    #[schema(value_type = Option<AddressesDoc>)]
    pub bcc: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<AddressesDoc>)]
    pub reply_to: Option<Value>,
    /// Required without `template`; one line.
    #[serde(default)]
    #[schema(max_length = 998, pattern = r"^[^\r\n]*$")]
    pub subject: Option<String>,
    /// `text` or `html` (not empty) is required without `template`.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    /// A stored template's name; it provides subject, html and text (see `templates::send`),
    /// so those are not given with it.
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub template: Option<String>,
    /// The template's variables, a JSON object; only with `template`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
    /// Extra headers; no CR/LF, and not the ones mailgate sets (From, To, Subject, Message-ID…).
    #[serde(default)]
    #[schema(value_type = Option<HashMap<HeaderName, HeaderValue>>)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub attachments: Option<Vec<AttachmentRequest>>,
    /// Up to 10 tags of letters, digits, `-`, `_`, `.` and `:`.
    #[serde(default)]
    #[schema(max_items = 10, value_type = Option<Vec<Tag>>)]
    pub tags: Option<Vec<String>>,
    /// Echoed in events and webhooks; up to 50 keys.
    #[serde(default)]
    #[schema(value_type = Option<HashMap<MetadataKey, MetadataValue>>)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// A named upstream relay from the configuration.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub relay: Option<String>,
    /// RFC 3339 time to send at (at most 30 days ahead by default); absent or past means now.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub send_at: Option<String>,
    /// Track opens and clicks of this message (needs the server's `tracking.base_url`);
    /// absent fields take the project's defaults.
    #[serde(default)]
    pub track: Option<Track>,
    /// One-click unsubscribe (RFC 8058): add `List-Unsubscribe: <…/u/<token>>` and
    /// `List-Unsubscribe-Post: List-Unsubscribe=One-Click`; a POST to that link suppresses the
    /// recipient for this project (reason `unsubscribe`) and sends `email.unsubscribed`. Needs
    /// the server's `tracking.base_url` and exactly one recipient (use a batch for several).
    /// Absent: the project's default (`unsubscribe_default`), for sends with one recipient.
    #[serde(default)]
    pub unsubscribe: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRequest {
    /// No slashes or control characters.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^/\\\u0000-\u001F\u007F-\u009F]*[^/\\\s\u0000-\u001F\u007F-\u009F][^/\\\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub filename: String,
    /// Base64 (standard alphabet, padded; whitespace is ignored).
    #[schema(value_type = String, format = Byte)]
    pub content: Base64Content,
    /// A MIME type; default `application/octet-stream`.
    #[serde(default)]
    #[schema(
        pattern = r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,62}/[A-Za-z0-9][A-Za-z0-9.+-]{0,62}(; ?[A-Za-z0-9-]{1,30}=[A-Za-z0-9-]{1,60})*$"
    )]
    pub content_type: Option<String>,
    /// Makes the part inline, referenced from the HTML as `cid:…`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-;=?-~]+$")]
    pub content_id: Option<String>,
}

/// An attachment's content as a request gives it, base64, decoded at most once however many
/// messages carry it. A SendGrid mail's attachments go to each of its personalizations: a
/// clone shares the text and the decoded bytes, so a 2 MB file sent to 100 personalizations
/// is held once, not 100 times.
#[derive(Clone)]
pub struct Base64Content(Arc<SharedContent>);

struct SharedContent {
    text: String,
    decoded: OnceLock<Result<Arc<[u8]>, String>>,
}

impl Base64Content {
    pub fn new(text: String) -> Self {
        Base64Content(Arc::new(SharedContent {
            text,
            decoded: OnceLock::new(),
        }))
    }

    /// Content a provider gives as bytes (a form's file, a list of byte values): nothing to
    /// decode.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Base64Content(Arc::new(SharedContent {
            text: String::new(),
            decoded: OnceLock::from(Ok(bytes.into())),
        }))
    }

    /// The bytes, decoded the first time any holder asks; or why the text is not base64.
    pub fn decode(&self) -> Result<Arc<[u8]>, String> {
        self.0
            .decoded
            .get_or_init(|| {
                let cleaned: Vec<u8> = self
                    .0
                    .text
                    .bytes()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                base64::engine::general_purpose::STANDARD
                    .decode(&cleaned)
                    .map(Arc::from)
                    .map_err(|e| format!("is not valid base64: {e}"))
            })
            .clone()
    }
}

impl From<String> for Base64Content {
    fn from(text: String) -> Self {
        Base64Content::new(text)
    }
}

impl fmt::Debug for Base64Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Content({} characters)", self.0.text.len())
    }
}

impl<'de> Deserialize<'de> for Base64Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Base64Content::new)
    }
}

/// A header name: letters, digits and `-`; not one mailgate sets itself (From, To, Cc, Bcc,
/// Subject, Message-ID, Date, Reply-To, Sender, MIME-Version, Content-Type,
/// Content-Transfer-Encoding, Content-Disposition, Return-Path, Received, DKIM-Signature).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(
    min_length = 1,
    max_length = 76,
    pattern = "^(?!([Ff][Rr][Oo][Mm]|[Tt][Oo]|[Cc][Cc]|[Bb][Cc][Cc]|[Ss][Uu][Bb][Jj][Ee][Cc][Tt]|[Mm][Ee][Ss][Ss][Aa][Gg][Ee]-[Ii][Dd]|[Dd][Aa][Tt][Ee]|[Rr][Ee][Pp][Ll][Yy]-[Tt][Oo]|[Ss][Ee][Nn][Dd][Ee][Rr]|[Mm][Ii][Mm][Ee]-[Vv][Ee][Rr][Ss][Ii][Oo][Nn]|[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Tt][Yy][Pp][Ee]|[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Tt][Rr][Aa][Nn][Ss][Ff][Ee][Rr]-[Ee][Nn][Cc][Oo][Dd][Ii][Nn][Gg]|[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Dd][Ii][Ss][Pp][Oo][Ss][Ii][Tt][Ii][Oo][Nn]|[Rr][Ee][Tt][Uu][Rr][Nn]-[Pp][Aa][Tt][Hh]|[Rr][Ee][Cc][Ee][Ii][Vv][Ee][Dd]|[Dd][Kk][Ii][Mm]-[Ss][Ii][Gg][Nn][Aa][Tt][Uu][Rr][Ee])$)[A-Za-z0-9-]+$"
)]
pub struct HeaderName(String);

/// A header value: one line, no control characters other than tab.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(
    max_length = 998,
    pattern = r"^[^\u0000-\u0008\u000A-\u001F\u007F-\u009F]*$"
)]
pub struct HeaderValue(String);

/// A tag: letters, digits, `-`, `_`, `.` and `:`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.:-]+$")]
pub struct Tag(String);

/// A metadata key, 1 to 64 characters.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(min_length = 1, max_length = 64)]
pub struct MetadataKey(String);

/// A metadata value, at most 1000 characters.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(max_length = 1000)]
pub struct MetadataValue(String);

impl Draft for SendRequest {
    fn template(&self) -> Option<&str> {
        self.template.as_deref()
    }
    fn has_variables(&self) -> bool {
        self.variables.is_some()
    }
    fn take_variables(&mut self) -> Option<Value> {
        self.variables.take()
    }
    fn content_given(&self) -> [(&'static str, bool); 3] {
        [
            ("subject", self.subject.is_some()),
            ("html", self.html.is_some()),
            ("text", self.text.is_some()),
        ]
    }
    fn fill(&mut self, subject: Option<String>, html: Option<String>, text: Option<String>) {
        self.subject = subject;
        self.html = html;
        self.text = text;
    }
    fn validate(
        self,
        relay_exists: &dyn Fn(&str) -> bool,
        max_schedule: chrono::Duration,
    ) -> Result<NewEmail, Vec<FieldError>> {
        SendRequest::validate(self, relay_exists, max_schedule)
    }
    fn track(&self) -> Track {
        self.track.unwrap_or_default()
    }
    fn unsubscribe(&self) -> Option<bool> {
        self.unsubscribe
    }
}

impl SendRequest {
    /// Checks every field and reports all problems at once, each by its JSON path.
    /// `relay_exists` says whether a named relay is configured; `max_schedule` is how far
    /// ahead `send_at` may be.
    pub fn validate(
        self,
        relay_exists: impl Fn(&str) -> bool,
        max_schedule: chrono::Duration,
    ) -> Result<NewEmail, Vec<FieldError>> {
        let mut errors = Vec::new();
        let from = match mailbox_value(&self.from) {
            Ok(m) => Some(m),
            Err(e) => {
                errors.push(FieldError::new("from", e));
                None
            }
        };
        let to = mailbox_list("to", self.to.as_ref(), &mut errors);
        let cc = mailbox_list("cc", self.cc.as_ref(), &mut errors);
        let bcc = mailbox_list("bcc", self.bcc.as_ref(), &mut errors);
        let reply_to = mailbox_list("reply_to", self.reply_to.as_ref(), &mut errors);
        let total = to.len() + cc.len() + bcc.len();
        if total == 0
            && !errors
                .iter()
                .any(|e| ["to", "cc", "bcc"].iter().any(|f| e.field.starts_with(f)))
        {
            errors.push(FieldError::new(
                "to",
                "at least one recipient is required in to, cc or bcc",
            ));
        }
        if total > MAX_RECIPIENTS {
            errors.push(FieldError::new(
                "to",
                format!(
                    "{total} recipients given; at most {MAX_RECIPIENTS} in to, cc and bcc together"
                ),
            ));
        }

        let subject = match self.subject {
            None => {
                errors.push(FieldError::new("subject", "is required"));
                String::new()
            }
            Some(s) => {
                if has_line_break(&s) {
                    errors.push(FieldError::new("subject", "must not contain CR or LF"));
                } else if s.chars().count() > 998 {
                    errors.push(FieldError::new("subject", "is longer than 998 characters"));
                }
                s
            }
        };
        let text = self.text.filter(|t| !t.is_empty());
        let html = self.html.filter(|h| !h.is_empty());
        if text.is_none() && html.is_none() {
            errors.push(FieldError::new("text", "text or html is required"));
        }

        if self.unsubscribe == Some(true) {
            if total > 1 {
                errors.push(FieldError::new(
                    "unsubscribe",
                    crate::submission::ONE_RECIPIENT,
                ));
            }
            // mailgate writes these itself; two of each would leave receivers guessing.
            for name in self.headers.iter().flat_map(|h| h.keys()) {
                if ["list-unsubscribe", "list-unsubscribe-post"]
                    .contains(&name.to_ascii_lowercase().as_str())
                {
                    errors.push(FieldError::new(
                        format!("headers.{name}"),
                        "is set by mailgate when unsubscribe is true",
                    ));
                }
            }
        }
        let headers = check_headers(self.headers.unwrap_or_default(), &mut errors);
        let attachments = check_attachments(self.attachments.unwrap_or_default(), &mut errors);
        let tags = check_tags(self.tags.unwrap_or_default(), &mut errors);
        let metadata = check_metadata(self.metadata.unwrap_or_default(), &mut errors);

        if let Some(relay) = &self.relay
            && !relay_exists(relay)
        {
            errors.push(FieldError::new(
                "relay",
                format!("no relay named `{relay}` is configured"),
            ));
        }

        let send_at =
            self.send_at
                .as_deref()
                .and_then(|raw| match DateTime::parse_from_rfc3339(raw) {
                    Ok(t) => {
                        let t = t.with_timezone(&Utc);
                        if t > Utc::now() + max_schedule {
                            errors.push(FieldError::new(
                                "send_at",
                                format!("may be at most {} days ahead", max_schedule.num_days()),
                            ));
                        }
                        Some(t)
                    }
                    Err(e) => {
                        errors.push(FieldError::new(
                            "send_at",
                            format!("is not an RFC 3339 time: {e}"),
                        ));
                        None
                    }
                });

        match (errors.is_empty(), from) {
            (true, Some(from)) => Ok(NewEmail {
                from,
                to,
                cc,
                bcc,
                reply_to,
                subject,
                text,
                html,
                headers,
                attachments,
                tags,
                metadata,
                relay: self.relay,
                send_at,
            }),
            _ => Err(errors),
        }
    }
}

/// A mailbox given as `"Name <a@b>"` or `{"email": …, "name": …}`.
fn mailbox_value(value: &Value) -> Result<Mailbox, String> {
    match value {
        Value::String(s) => Mailbox::parse(s),
        Value::Object(map) => {
            if let Some(key) = map.keys().find(|k| *k != "email" && *k != "name") {
                return Err(format!("unknown field `{key}` (expected email and name)"));
            }
            let email = match map.get("email") {
                Some(Value::String(e)) => EmailAddress::parse(e)?,
                Some(_) => return Err("email must be a string".into()),
                None => return Err("email is required".into()),
            };
            let name = match map.get("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(n)) => Some(n.as_str()),
                Some(_) => return Err("name must be a string".into()),
            };
            Mailbox::with_name(name, email)
        }
        _ => Err("must be an address string or an object {email, name}".into()),
    }
}

fn mailbox_list(field: &str, value: Option<&Value>, errors: &mut Vec<FieldError>) -> Vec<Mailbox> {
    let items: Vec<(String, &Value)> = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{field}[{i}]"), v))
            .collect(),
        Some(single) => vec![(field.to_string(), single)],
    };
    let mut out = Vec::new();
    for (path, item) in items {
        match mailbox_value(item) {
            Ok(m) => out.push(m),
            Err(e) => errors.push(FieldError::new(path, e)),
        }
    }
    out
}

fn check_attachments(
    list: Vec<AttachmentRequest>,
    errors: &mut Vec<FieldError>,
) -> Vec<Attachment> {
    let mut out = Vec::new();
    for (i, a) in list.into_iter().enumerate() {
        let path = |f: &str| format!("attachments[{i}].{f}");
        let before = errors.len();
        if a.filename.trim().is_empty() || a.filename.len() > 255 {
            errors.push(FieldError::new(
                path("filename"),
                "must be 1 to 255 characters",
            ));
        } else if a
            .filename
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        {
            errors.push(FieldError::new(
                path("filename"),
                "must not contain control characters or slashes",
            ));
        }
        let content = a
            .content
            .decode()
            .map_err(|e| errors.push(FieldError::new(path("content"), e)))
            .ok();
        let content_type = match a.content_type.as_deref() {
            None => Some(
                lettre::message::header::ContentType::parse("application/octet-stream")
                    .expect("static"),
            ),
            Some(ct) if has_line_break(ct) => {
                errors.push(FieldError::new(
                    path("content_type"),
                    "must not contain CR or LF",
                ));
                None
            }
            Some(ct) => lettre::message::header::ContentType::parse(ct)
                .map_err(|_| {
                    errors.push(FieldError::new(
                        path("content_type"),
                        format!("`{ct}` is not a MIME type"),
                    ))
                })
                .ok(),
        };
        if let Some(cid) = &a.content_id {
            let ok = !cid.is_empty()
                && cid.len() <= 128
                && cid
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
            if !ok {
                errors.push(FieldError::new(
                    path("content_id"),
                    "must be 1 to 128 printable characters without < or >",
                ));
            }
        }
        if errors.len() == before
            && let (Some(content), Some(content_type)) = (content, content_type)
        {
            out.push(Attachment {
                filename: a.filename,
                content,
                content_type,
                content_id: a.content_id,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<NewEmail, Vec<FieldError>> {
        let req: SendRequest = serde_json::from_value(body).unwrap();
        req.validate(|name| name == "default", chrono::Duration::days(30))
    }

    fn fields(r: Result<NewEmail, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn accepts_a_full_message() {
        let email = parse(json!({
            "from": {"email": "a@example.com", "name": "A"},
            "to": ["b@example.com", "B2 <b2@example.com>"],
            "bcc": "B@example.com",
            "subject": "Hi", "text": "t", "html": "<p>h</p>",
            "headers": {"X-Campaign": "1"},
            "attachments": [{"filename": "a.txt", "content": "aGVsbG8=", "content_type": "text/plain"}],
            "tags": ["welcome"], "metadata": {"user": "42"}, "relay": "default"
        }))
        .unwrap();
        // b@ and B@ are one mailbox: relayed once.
        assert_eq!(email.recipients().len(), 2);
        assert_eq!(&email.attachments[0].content[..], b"hello");
    }

    #[test]
    fn reports_each_bad_field_by_path() {
        let f = fields(parse(json!({
            "from": "not an address",
            "to": ["ok@example.com", "bad"],
            "subject": "a\r\nBcc: x@y.com",
            "text": "t",
            "headers": {"X-A": "1\r\nBcc: evil@x.com", "From": "x@y.com"},
            "attachments": [{"filename": "a", "content": "***"}],
            "tags": ["no spaces"],
            "relay": "nope"
        })));
        for expected in [
            "from",
            "to[1]",
            "subject",
            "headers.X-A",
            "headers.From",
            "attachments[0].content",
            "tags[0]",
            "relay",
        ] {
            assert!(
                f.contains(&expected.to_string()),
                "{expected} missing from {f:?}"
            );
        }
    }

    #[test]
    fn limits_recipients() {
        let to: Vec<String> = (0..51).map(|i| format!("r{i}@example.com")).collect();
        let f = fields(parse(
            json!({"from": "a@example.com", "to": to, "subject": "s", "text": "t"}),
        ));
        assert_eq!(f, vec!["to"]);
        let f = fields(parse(
            json!({"from": "a@example.com", "subject": "s", "text": "t"}),
        ));
        assert_eq!(f, vec!["to"]);
    }
}
