//! Postmark's request bodies as its SDKs send them (PascalCase): one message, its headers and
//! attachments, the batches of them, and the fields accepted without being acted on.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::super::{
    batch::{Batch, BatchItem},
    shared::ignored_in,
};

/// One message as the Postmark SDKs send it (PascalCase). postmarker sends `null` for every
/// unset field and postmark-python empty lists; both mean "not given".
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
#[schema(as = PostmarkMessage)]
pub struct Message {
    /// `"Name <address>"` or an address.
    pub from: Option<String>,
    /// Comma-separated addresses, up to 50 in To, Cc and Bcc together.
    pub to: Option<String>,
    pub cc: Option<String>,
    pub bcc: Option<String>,
    pub reply_to: Option<String>,
    /// Required with content (`/email`), not given with a template; one line.
    #[schema(max_length = 998, pattern = r"^[^\r\n]*$")]
    pub subject: Option<String>,
    pub html_body: Option<String>,
    pub text_body: Option<String>,
    /// Becomes the message's one tag: letters, digits, `-`, `_`, `.` and `:`.
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9_.:-]*$")]
    pub tag: Option<String>,
    pub headers: Option<Vec<Header>>,
    pub attachments: Option<Vec<Attachment>>,
    #[schema(value_type = Option<HashMap<crate::api::email_request::MetadataKey, crate::api::email_request::MetadataValue>>)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// The send's `track.opens`.
    pub track_opens: Option<bool>,
    /// `None` or not: the send's `track.clicks` (links of the HTML part are tracked).
    pub track_links: Option<String>,
    /// `outbound`; any other stream is sent the same way and named in `X-Mailgate-Ignored`.
    pub message_stream: Option<String>,
    /// With `/email/withTemplate`: the stored template named by this number.
    pub template_id: Option<i64>,
    /// With `/email/withTemplate`: the stored template's name.
    pub template_alias: Option<String>,
    /// The template's variables.
    #[schema(value_type = Option<Object>)]
    pub template_model: Option<Value>,
    /// Ignored: templates render as stored.
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
    pub content_type: Option<String>,
    /// `cid:logo` or `logo`: makes the part inline.
    #[serde(rename = "ContentID")]
    pub content_id: Option<String>,
    /// Ignored: the length of `Content`, as postmark-python may send it.
    pub content_length: Option<u64>,
}

impl BatchItem for Message {
    const BATCH: &'static str = "MessageBatch";
    /// As Postmark allows.
    const MAX: usize = 500;
    const NOUN: &'static str = "messages";
}

/// The body of `/email/batch`.
pub type MessageBatch = Batch<Message>;

/// The body of `/email/batchWithTemplates`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
#[schema(as = PostmarkTemplateBatch)]
pub struct TemplateBatch {
    #[schema(value_type = MessageBatch)]
    pub messages: Vec<Value>,
}

/// Fields accepted and not acted on (named in `X-Mailgate-Ignored`) when they ask for
/// something: CSS inlining, text-only link tracking and streams other than `outbound`.
pub fn ignored(body: &Value) -> Vec<String> {
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
