//! Resend's bodies into the native [`SendRequest`] (tags as tags and metadata, attachments in
//! their three forms, `scheduled_at` in words), and mailgate's answers into Resend's shapes:
//! the sent id, the batch result, the email object and its `last_event`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    super::shared::attachment_of_bytes,
    request::{Attachment, Email},
};
use crate::{
    api::{
        email_request::{AttachmentRequest, SendRequest},
        error::{FieldError, ServiceError},
    },
    service::emails::EmailDetail,
};

impl Email {
    /// The native request, or every field that cannot be mapped.
    pub fn into_request(self, now: DateTime<Utc>) -> Result<SendRequest, ServiceError> {
        let mut errors = Vec::new();
        let attachments = self.attachments.map(|list| {
            list.into_iter()
                .enumerate()
                .filter_map(|(i, a)| attachment(i, a, &mut errors))
                .collect()
        });
        let (mut tags, mut metadata) = (Vec::new(), BTreeMap::new());
        for tag in self.tags.unwrap_or_default() {
            tags.push(tag.name.clone());
            metadata.insert(tag.name, tag.value);
        }
        let send_at = self.scheduled_at.and_then(|raw| match schedule(&raw, now) {
            Some(t) => Some(t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            None => {
                errors.push(FieldError::new(
                    "scheduled_at",
                    "is neither an ISO 8601 time nor `in N minutes` (seconds, hours, days)",
                ));
                None
            }
        });
        if self.from.is_none() {
            errors.push(FieldError::new("from", "is required"));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let (template, variables) = match self.template {
            Some(t) => (Some(t.id), t.variables),
            None => (None, None),
        };
        Ok(SendRequest {
            from: Value::String(self.from.unwrap_or_default()),
            to: self.to,
            cc: self.cc,
            bcc: self.bcc,
            reply_to: self.reply_to,
            subject: self.subject,
            text: self.text,
            html: self.html,
            template,
            variables,
            headers: self.headers,
            attachments,
            tags: (!tags.is_empty()).then_some(tags),
            metadata: (!metadata.is_empty()).then_some(metadata),
            relay: None,
            send_at,
            // Resend sets tracking per domain, not per send: the project's defaults apply.
            track: None,
            unsubscribe: None,
        })
    }
}

fn attachment(i: usize, a: Attachment, errors: &mut Vec<FieldError>) -> Option<AttachmentRequest> {
    let path = |f: &str| format!("attachments[{i}].{f}");
    if a.path.is_some() {
        errors.push(FieldError::new(
            path("path"),
            "remote attachments are not fetched: give the file as `content`",
        ));
        return None;
    }
    let Some(filename) = a.filename else {
        errors.push(FieldError::new(path("filename"), "is required"));
        return None;
    };
    let content_id = a.content_id.or(a.inline_content_id);
    match a.content.as_ref().map(content_bytes) {
        Some(Ok(Some(bytes))) => Some(attachment_of_bytes(
            filename,
            bytes,
            a.content_type,
            content_id,
        )),
        // Base64 text: the native check reports bad base64 by its path.
        Some(Ok(None)) => Some(AttachmentRequest {
            filename,
            content: a
                .content
                .and_then(|c| c.as_str().map(str::to_string))?
                .into(),
            content_type: a.content_type,
            content_id,
        }),
        Some(Err(e)) => {
            errors.push(FieldError::new(path("content"), e));
            None
        }
        None => {
            errors.push(FieldError::new(path("content"), "is required"));
            None
        }
    }
}

/// Attachment bytes given as a list of byte values or a serialised Node Buffer; `None` for a
/// base64 string, which is passed on as it is.
fn content_bytes(content: &Value) -> Result<Option<Vec<u8>>, String> {
    let list = match content {
        Value::String(_) => return Ok(None),
        Value::Array(list) => list,
        Value::Object(map) if map.get("type") == Some(&json!("Buffer")) => match map.get("data") {
            Some(Value::Array(list)) => list,
            _ => return Err("a Buffer needs `data`, a list of byte values".into()),
        },
        _ => return Err("must be base64, a list of byte values or a Buffer".into()),
    };
    list.iter()
        .map(|v| {
            v.as_u64()
                .and_then(|b| u8::try_from(b).ok())
                .ok_or_else(|| "byte values are integers from 0 to 255".to_string())
        })
        .collect::<Result<Vec<u8>, _>>()
        .map(Some)
}

/// `scheduled_at`: RFC 3339, or Resend's plain `in N units`.
pub fn schedule(raw: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw.trim()) {
        return Some(t.with_timezone(&Utc));
    }
    let words: Vec<String> = raw
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let [in_, n, unit] = words.as_slice() else {
        return None;
    };
    let n: i64 = n.parse().ok().filter(|n| (0..=100_000).contains(n))?;
    let unit = unit.trim_end_matches('s');
    let step = match unit {
        "sec" | "second" => Duration::seconds(1),
        "min" | "minute" => Duration::minutes(1),
        "hour" | "hr" => Duration::hours(1),
        "day" => Duration::days(1),
        _ => return None,
    };
    (in_ == "in").then(|| now + step * n as i32)
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendSent)]
pub struct Sent {
    pub id: Uuid,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendBatchError)]
pub struct BatchError {
    pub index: usize,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendBatchResult)]
pub struct BatchResult {
    pub data: Vec<Sent>,
    /// Only with `x-batch-validation: permissive`: the refused items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<BatchError>>,
}

/// An email as `GET /emails/{id}` shows it (Resend's email object).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendEmailObject)]
pub struct EmailObject {
    /// Always `email`.
    pub object: &'static str,
    pub id: Uuid,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Option<Vec<String>>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub created_at: DateTime<Utc>,
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Resend's name for the message's status (`queued`, `scheduled`, `delivered`,
    /// `delivery_delayed`, `bounced`, `failed`, `suppressed`, `canceled`…).
    pub last_event: String,
    pub tags: Vec<TagOut>,
}

/// One page of `GET /emails`: Resend's list object.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendEmailList)]
pub struct EmailList {
    /// Always `list`.
    pub object: &'static str,
    pub has_more: bool,
    pub data: Vec<ListedEmail>,
}

/// An email as `GET /emails` lists it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendListedEmail)]
pub struct ListedEmail {
    pub id: Uuid,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Option<Vec<String>>,
    pub bcc: Option<Vec<String>>,
    /// Not kept apart from the message: always null here (`GET /emails/{id}` reads it).
    pub reply_to: Option<Vec<String>>,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Resend's name for the message's status, as in `GET /emails/{id}`.
    pub last_event: String,
}

/// A listed message with its recipients (address, kind) in Resend's shape.
pub fn listed_email(
    message: &crate::store::messages::MessageSummary,
    recipients: &[(String, String)],
) -> ListedEmail {
    let of_kind = |kind: &str| -> Vec<String> {
        recipients
            .iter()
            .filter(|(_, k)| k == kind)
            .map(|(email, _)| email.clone())
            .collect()
    };
    let some = |list: Vec<String>| (!list.is_empty()).then_some(list);
    ListedEmail {
        id: message.id,
        from: message.from_addr.clone(),
        to: of_kind("to"),
        cc: some(of_kind("cc")),
        bcc: some(of_kind("bcc")),
        reply_to: None,
        subject: message.subject.clone(),
        created_at: message.created_at,
        scheduled_at: message.send_at,
        last_event: last_event(&message.status).to_string(),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendTagOut)]
pub struct TagOut {
    pub name: String,
    pub value: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ResendCancelled)]
pub struct CancelledEmail {
    /// Always `email`.
    pub object: &'static str,
    pub id: Uuid,
}

/// Resend's word for a mailgate message status.
pub fn last_event(status: &str) -> &str {
    match status {
        "queued" | "sending" => "queued",
        "deferred" => "delivery_delayed",
        "delivered" | "partially_delivered" => "delivered",
        "cancelled" => "canceled",
        other => other,
    }
}

/// A message, its recipients and its MIME (for the parts and `Reply-To`) as Resend's email
/// object.
pub fn email_object(id: Uuid, detail: &EmailDetail, source: &[u8]) -> EmailObject {
    let parsed = mail_parser::MessageParser::default().parse(source);
    let (html, text, reply_to) = match &parsed {
        Some(m) => (
            m.body_html(0).map(|s| s.into_owned()),
            m.body_text(0).map(|s| s.into_owned()),
            m.reply_to().map(|list| {
                list.iter()
                    .filter_map(|a| a.address().map(str::to_string))
                    .collect()
            }),
        ),
        None => (None, None, None),
    };
    let of_kind = |kind: &str| -> Vec<String> {
        detail
            .recipients
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.email.clone())
            .collect()
    };
    let message = &detail.message;
    let tags = message
        .tags
        .iter()
        .map(|name| TagOut {
            name: name.clone(),
            value: message.metadata[name.as_str()]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    EmailObject {
        object: "email",
        id,
        from: message.from_addr.clone(),
        to: of_kind("to"),
        cc: of_kind("cc"),
        bcc: of_kind("bcc"),
        reply_to,
        subject: message.subject.clone(),
        html,
        text,
        created_at: message.created_at,
        scheduled_at: message.send_at,
        last_event: last_event(&message.status).to_string(),
        tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_at_takes_rfc3339_or_in_n_units() {
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(schedule("in 1 min", now), Some(now + Duration::minutes(1)));
        assert_eq!(schedule("in 2 Hours", now), Some(now + Duration::hours(2)));
        assert_eq!(
            schedule("2030-01-02T00:00:00Z", now),
            Some(now + Duration::days(1))
        );
        assert_eq!(schedule("tomorrow at 9", now), None);
    }

    #[test]
    fn attachment_content_in_its_three_forms() {
        assert_eq!(
            content_bytes(&json!([104, 105])).unwrap(),
            Some(b"hi".to_vec())
        );
        assert_eq!(
            content_bytes(&json!({"type": "Buffer", "data": [104, 105]})).unwrap(),
            Some(b"hi".to_vec())
        );
        assert_eq!(content_bytes(&json!("aGk=")).unwrap(), None);
        assert!(content_bytes(&json!([256])).is_err());
    }
}
