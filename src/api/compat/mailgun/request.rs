//! Mailgun's request as its SDKs send it: a multipart (or URL-encoded) form of text fields,
//! repeatable, and files (`attachment`, `inline`), read with the native body checks; the
//! options accepted without being acted on; and the form's fields as the spec shows them.

use axum::{
    body::Bytes,
    extract::{FromRequest, Multipart, Request},
    http::header,
};
use serde_json::Value;

use super::super::address::split_list;
use crate::api::{error::ServiceError, extract::body_error};

/// Options accepted and not acted on: named in `X-Mailgate-Ignored`.
pub const IGNORED: &[&str] = &[
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
pub struct Form {
    pub fields: Vec<(String, String)>,
    pub files: Vec<File>,
}

pub struct File {
    /// `attachment` or `inline`.
    pub field: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

impl Form {
    pub async fn read(request: Request) -> Result<Form, ServiceError> {
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

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn one(&self, name: &str) -> Option<String> {
        self.all(name).last().map(|v| v.to_string())
    }

    /// Every address of a recipient field, repeated or comma-separated.
    pub fn addresses(&self, name: &str) -> Option<Value> {
        let list: Vec<Value> = self
            .all(name)
            .into_iter()
            .flat_map(split_list)
            .map(Value::String)
            .collect();
        (!list.is_empty()).then_some(Value::Array(list))
    }

    pub fn ignored(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (name, _) in &self.fields {
            if IGNORED.contains(&name.as_str()) && !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }

    /// A `yes`/`no` option (`true`/`false`, and `htmlonly` for clicks, count too).
    pub fn flag(&self, name: &str) -> Option<bool> {
        match self.one(name)?.to_ascii_lowercase().as_str() {
            "yes" | "true" | "htmlonly" => Some(true),
            "no" | "false" => Some(false),
            _ => None,
        }
    }

    pub fn test_mode(&self) -> bool {
        self.one("o:testmode")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true"))
    }
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
