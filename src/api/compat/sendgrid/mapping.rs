//! SendGrid's mail into native [`SendRequest`]s, one per personalization (its overrides over
//! the mail's fields), or every problem of the whole mail: SendGrid refuses all or nothing.

use chrono::{DateTime, SecondsFormat};
use serde_json::{Value, json};

use super::{
    super::shared::track,
    request::{Address, MAX_PERSONALIZATIONS, Mail},
};
use crate::api::{
    email_request::{AttachmentRequest, SendRequest},
    error::{FieldError, ServiceError},
};

impl Mail {
    /// One native request per personalization, or every problem of the whole mail.
    pub fn into_requests(self) -> Result<Vec<SendRequest>, ServiceError> {
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
            // A stored template gives the subject and parts.
            let content = |given: Option<String>| given.filter(|_| template.is_none());
            let setting = |name: &str| self.tracking_settings.as_ref()?[name]["enable"].as_bool();
            requests.push(SendRequest {
                from: serde_json::to_value(p.from.as_ref().unwrap_or(&self.from))
                    .map_err(anyhow::Error::from)?,
                to: Some(addresses(p.to)),
                cc: p.cc.map(addresses),
                bcc: p.bcc.map(addresses),
                reply_to: reply_to.clone(),
                subject: content(p.subject.or_else(|| self.subject.clone())),
                text: content(text.clone()),
                html: content(html.clone()),
                variables: template.as_ref().and(p.dynamic_template_data),
                template,
                headers: (!headers.is_empty()).then_some(headers),
                attachments: (!attachments.is_empty()).then(|| attachments.clone()),
                tags: self.categories.clone().filter(|c| !c.is_empty()),
                metadata: (!metadata.is_empty()).then_some(metadata),
                relay: None,
                send_at,
                track: track(setting("open_tracking"), setting("click_tracking")),
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
