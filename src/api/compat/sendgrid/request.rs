//! SendGrid's request body as its SDKs send it (snake_case): the mail, its personalizations,
//! content parts, attachments and settings, with what it asks for that is not acted on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::email_request::Base64Content;

/// Most personalizations in one send, as SendGrid allows.
pub const MAX_PERSONALIZATIONS: usize = 1000;

/// A mail as the SendGrid SDKs send it (snake_case).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SendGridMail)]
pub struct Mail {
    pub from: Address,
    pub reply_to: Option<Address>,
    pub reply_to_list: Option<Vec<Address>>,
    /// Required without `template_id`, unless every personalization has one; one line.
    pub subject: Option<String>,
    /// One message each, 1 to 1000.
    #[schema(min_items = 1, max_items = 1000)]
    pub personalizations: Vec<Personalization>,
    /// One `text/plain` and one `text/html` part; one not empty is required without
    /// `template_id`.
    #[schema(max_items = 2)]
    pub content: Option<Vec<Content>>,
    pub attachments: Option<Vec<Attachment>>,
    /// A stored mailgate template's name (`d-…` names work).
    pub template_id: Option<String>,
    /// Extra headers, as for `/v1/emails`.
    #[schema(value_type = Option<HashMap<crate::api::email_request::HeaderName, crate::api::email_request::HeaderValue>>)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Tags, up to 10.
    #[schema(max_items = 10, value_type = Option<Vec<crate::api::email_request::Tag>>)]
    pub categories: Option<Vec<String>>,
    /// Metadata, with each personalization's.
    #[schema(value_type = Option<HashMap<crate::api::email_request::MetadataKey, crate::api::email_request::MetadataValue>>)]
    pub custom_args: Option<BTreeMap<String, String>>,
    /// Unix time to send at.
    pub send_at: Option<i64>,
    /// Accepted and ignored, whatever its value (named in `X-Mailgate-Ignored`).
    #[schema(value_type = Option<Value>)]
    pub batch_id: Option<Value>,
    /// Accepted and ignored, whatever its value: mailgate has no unsubscribe groups.
    #[schema(value_type = Option<Value>)]
    pub asm: Option<Value>,
    /// Accepted and ignored: relays are chosen by mailgate's configuration.
    pub ip_pool_name: Option<String>,
    pub mail_settings: Option<MailSettings>,
    /// `open_tracking.enable` and `click_tracking.enable` are the send's `track`; other
    /// settings are ignored (named in `X-Mailgate-Ignored`).
    #[schema(value_type = Option<Value>)]
    pub tracking_settings: Option<Value>,
    /// Legacy substitution sections: refused when given (they would change the content).
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
    pub cc: Option<Vec<Address>>,
    pub bcc: Option<Vec<Address>>,
    pub from: Option<Address>,
    /// Overrides the mail's; one line.
    pub subject: Option<String>,
    #[schema(value_type = Option<HashMap<crate::api::email_request::HeaderName, crate::api::email_request::HeaderValue>>)]
    pub headers: Option<BTreeMap<String, String>>,
    /// The template's variables.
    #[schema(value_type = Option<Object>)]
    pub dynamic_template_data: Option<Value>,
    #[schema(value_type = Option<HashMap<crate::api::email_request::MetadataKey, crate::api::email_request::MetadataValue>>)]
    pub custom_args: Option<BTreeMap<String, String>>,
    pub send_at: Option<i64>,
    /// Legacy substitutions: refused when given (they would change the content).
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
    #[schema(value_type = String)]
    pub content: Base64Content,
    pub filename: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `attachment` (default) or `inline`.
    pub disposition: Option<String>,
    pub content_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = SendGridMailSettings)]
pub struct MailSettings {
    /// Validate only: answered `200`, nothing sent.
    pub sandbox_mode: Option<Setting>,
    /// A footer added to the content: refused when enabled.
    pub footer: Option<Setting>,
    /// Any other setting (`bypass_*`, `spam_check`…) is accepted and ignored.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = SendGridSetting)]
pub struct Setting {
    pub enable: Option<bool>,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub other: BTreeMap<String, Value>,
}

impl Mail {
    /// Whether it asks to be checked only (`mail_settings.sandbox_mode.enable`).
    pub fn sandbox(&self) -> bool {
        self.mail_settings
            .as_ref()
            .and_then(|m| m.sandbox_mode.as_ref())
            .and_then(|s| s.enable)
            .unwrap_or(false)
    }

    /// Fields accepted and not acted on.
    pub fn ignored(&self) -> Vec<String> {
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
}
