//! Mailgun's form into the native [`SendRequest`] (`h:` headers, `v:` variables, `o:`
//! options, files as attachments; an unknown field refuses the send), and the answer into
//! Mailgun's `{"id": "<…@domain>", "message"}`.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{
    super::{
        address::split_list,
        shared::{attachment_of_bytes, track},
    },
    request::{Form, IGNORED},
};
use crate::api::{
    email_request::{AttachmentRequest, SendRequest},
    error::{FieldError, ServiceError},
};

impl Form {
    /// The native request, or every field that cannot be mapped.
    pub fn into_request(mut self) -> Result<SendRequest, ServiceError> {
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
            // Batch sending: read by the route (see `batch`).
            "recipient-variables",
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
        let attachments: Vec<AttachmentRequest> = std::mem::take(&mut self.files)
            .into_iter()
            .map(|f| {
                // Mailgun references inline files by their name: `cid:logo.png`.
                let content_id = (f.field == "inline").then(|| f.filename.clone());
                attachment_of_bytes(f.filename, f.bytes, f.content_type, content_id)
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
            track: track(
                self.flag("o:tracking-opens").or(self.flag("o:tracking")),
                self.flag("o:tracking-clicks").or(self.flag("o:tracking")),
            ),
            unsubscribe: None,
        })
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

/// The answer to a send whose message got `id`, in the sending `domain`'s name.
pub fn queued(id: Uuid, domain: &str) -> Queued {
    let domain: String = domain
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    Queued {
        id: format!("<{id}@{domain}>"),
        message: "Queued. Thank you.".into(),
    }
}
