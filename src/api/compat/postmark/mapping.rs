//! Postmark's message into the native [`SendRequest`] (comma-separated lists, headers as
//! pairs, `cid:` content ids, tracking flags, templates only through the template routes),
//! and an answer into Postmark's per-message result.

use std::collections::BTreeMap;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{
    super::{address::list_value, shared::track},
    errors::{message, status_and_code},
    request::Message,
};
use crate::{
    api::{
        email_request::{AttachmentRequest, SendRequest},
        error::ServiceError,
    },
    submission::Accepted,
};

/// Whether a route sends a stored template or content given in the request.
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Content,
    Template,
}

impl Message {
    pub fn into_request(self, kind: Kind) -> Result<SendRequest, ServiceError> {
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
                    content: a.content.into(),
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
            track: track(
                self.track_opens,
                // mailgate tracks the links of the HTML part.
                self.track_links.as_deref().map(|links| links != "None"),
            ),
            unsubscribe: None,
        })
    }
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
    pub fn accepted(to: String, accepted: &Accepted) -> Self {
        Sent {
            to,
            submitted_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, false),
            message_id: accepted.id.to_string(),
            error_code: 0,
            message: "OK".into(),
        }
    }

    /// A message sent with the test token: checked, neither stored nor sent, so its id is
    /// no message's.
    pub fn tested(to: String) -> Self {
        Sent {
            to,
            submitted_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, false),
            message_id: uuid::Uuid::new_v4().to_string(),
            error_code: 0,
            message: "Test job accepted".into(),
        }
    }

    pub fn refused(to: String, err: &ServiceError) -> Self {
        Sent {
            to,
            submitted_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, false),
            message_id: String::new(),
            error_code: status_and_code(err).1,
            message: message(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
