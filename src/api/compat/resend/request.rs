//! Resend's request bodies as its SDKs send them: one email (snake_case; resend-node converts
//! its camelCase), its attachments, tags and template, and the batch of them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::super::batch::{Batch, BatchItem};

/// Fields accepted and not acted on: named in `X-Mailgate-Ignored`.
pub const IGNORED: &[&str] = &["topic_id"];

/// One email as the Resend SDKs send it (snake_case; resend-node converts its camelCase).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResendEmail)]
pub struct Email {
    /// `"Name <address>"` or an address.
    #[schema(value_type = String)]
    pub from: Option<String>,
    /// An address or a list of up to 50.
    #[schema(value_type = Option<crate::api::email_request::AddressesDoc>)]
    pub to: Option<Value>,
    #[schema(value_type = Option<crate::api::email_request::AddressesDoc>)]
    pub cc: Option<Value>,
    #[schema(value_type = Option<crate::api::email_request::AddressesDoc>)]
    pub bcc: Option<Value>,
    #[schema(value_type = Option<crate::api::email_request::AddressesDoc>)]
    pub reply_to: Option<Value>,
    /// Required without `template`; one line.
    #[schema(max_length = 998, pattern = r"^[^\r\n]*$")]
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    /// Extra headers, as for `/v1/emails`.
    #[schema(value_type = Option<HashMap<crate::api::email_request::HeaderName, crate::api::email_request::HeaderValue>>)]
    pub headers: Option<BTreeMap<String, String>>,
    pub attachments: Option<Vec<Attachment>>,
    /// Up to 10; each becomes a metadata entry `name: value`, and `name` a tag.
    #[schema(max_items = 10)]
    pub tags: Option<Vec<Tag>>,
    /// RFC 3339, or `in N minutes` (seconds, minutes, hours, days).
    pub scheduled_at: Option<String>,
    /// A stored mailgate template by name, with its variables.
    pub template: Option<Template>,
    /// Accepted and ignored (named in `X-Mailgate-Ignored`).
    pub topic_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResendAttachment)]
pub struct Attachment {
    /// Base64, a list of byte values (resend-python), or a serialised Node Buffer
    /// `{"type": "Buffer", "data": […]}`.
    #[schema(value_type = Option<Value>)]
    pub content: Option<Value>,
    pub filename: Option<String>,
    /// A remote file: refused, mailgate does not fetch URLs.
    pub path: Option<String>,
    pub content_type: Option<String>,
    pub content_id: Option<String>,
    pub inline_content_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResendTag)]
pub struct Tag {
    /// A tag and a metadata key: letters, digits, `-`, `_`, `.` and `:`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.:-]+$")]
    pub name: String,
    #[schema(max_length = 1000)]
    pub value: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResendTemplate)]
pub struct Template {
    /// The stored template's name.
    pub id: String,
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
}

impl BatchItem for Email {
    const BATCH: &'static str = "EmailBatch";
    /// As Resend allows.
    const MAX: usize = 100;
    const NOUN: &'static str = "emails";
}

/// The body of `/emails/batch`.
pub type EmailBatch = Batch<Email>;

/// `PATCH /emails/{id}`: a new time for a scheduled email. resend-python sends the id in
/// the body too.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ResendUpdateEmail)]
pub struct Update {
    /// RFC 3339, or `in N minutes` (seconds, minutes, hours, days).
    pub scheduled_at: String,
    /// The email's id, as in the path (resend-python repeats it).
    #[serde(default)]
    pub id: Option<String>,
}
