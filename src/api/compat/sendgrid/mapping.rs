//! SendGrid's mail into native [`SendRequest`]s, one per personalization (its overrides over
//! the mail's fields), or every problem of the whole mail: SendGrid refuses all or nothing.
//! The requests are made one at a time, as they are prepared, from the mail's parts, which
//! they share: a mail with 1,000 personalizations is not copied 1,000 times first.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use serde_json::{Value, json};

use super::{
    super::shared::track,
    request::{Address, MAX_PERSONALIZATIONS, Mail, Personalization},
};
use crate::api::{
    email_request::{AttachmentRequest, SendRequest},
    error::{FieldError, ServiceError},
};
use crate::domain::Track;

impl Mail {
    /// One native request per personalization, made as the iterator is read; or every
    /// problem of the whole mail.
    pub fn into_requests(self) -> Result<Requests, ServiceError> {
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
        // Each attachment's content is shared by every personalization's request.
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
        for (i, p) in self.personalizations.iter().enumerate() {
            if p.substitutions.as_ref().is_some_and(not_empty) {
                errors.push(FieldError::new(
                    format!("personalizations.{i}.substitutions"),
                    "substitutions are not supported: use dynamic_template_data",
                ));
            }
            if send_at(p.send_at.or(self.send_at)).is_err() {
                errors.push(FieldError::new("send_at", "is not a unix time"));
            }
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let setting = |name: &str| self.tracking_settings.as_ref()?[name]["enable"].as_bool();
        let track = track(setting("open_tracking"), setting("click_tracking"));
        let template = self.template_id;
        // A stored template gives the subject and parts.
        let content = |given: Option<String>| given.filter(|_| template.is_none());
        Ok(Requests {
            common: Common {
                from: serde_json::to_value(&self.from).map_err(anyhow::Error::from)?,
                subject: self.subject,
                text: content(text),
                html: content(html),
                reply_to,
                headers: self.headers.unwrap_or_default(),
                custom_args: self.custom_args.unwrap_or_default(),
                attachments,
                tags: self.categories.filter(|c| !c.is_empty()),
                send_at: self.send_at,
                track,
                template,
            },
            personalizations: self.personalizations.into_iter(),
        })
    }
}

/// The native requests of a mail, one per personalization, each made when it is read.
pub struct Requests {
    common: Common,
    personalizations: std::vec::IntoIter<Personalization>,
}

/// What every personalization of a mail starts from.
struct Common {
    from: Value,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    reply_to: Option<Value>,
    headers: BTreeMap<String, String>,
    custom_args: BTreeMap<String, String>,
    attachments: Vec<AttachmentRequest>,
    tags: Option<Vec<String>>,
    send_at: Option<i64>,
    track: Option<Track>,
    template: Option<String>,
}

impl Common {
    /// A personalization's request: its overrides over the mail's fields.
    fn request(&self, p: Personalization) -> Result<SendRequest, ServiceError> {
        let mut headers = self.headers.clone();
        headers.extend(p.headers.unwrap_or_default());
        let mut metadata = self.custom_args.clone();
        metadata.extend(p.custom_args.unwrap_or_default());
        let from = match &p.from {
            Some(from) => serde_json::to_value(from).map_err(anyhow::Error::from)?,
            None => self.from.clone(),
        };
        let subject = p.subject.or_else(|| self.subject.clone());
        Ok(SendRequest {
            from,
            to: Some(addresses(p.to)),
            cc: p.cc.map(addresses),
            bcc: p.bcc.map(addresses),
            reply_to: self.reply_to.clone(),
            subject: subject.filter(|_| self.template.is_none()),
            text: self.text.clone(),
            html: self.html.clone(),
            variables: self.template.as_ref().and(p.dynamic_template_data),
            template: self.template.clone(),
            headers: (!headers.is_empty()).then_some(headers),
            attachments: (!self.attachments.is_empty()).then(|| self.attachments.clone()),
            tags: self.tags.clone(),
            metadata: (!metadata.is_empty()).then_some(metadata),
            relay: None,
            // Checked for every personalization before the first request was made.
            send_at: send_at(p.send_at.or(self.send_at)).unwrap_or(None),
            track: self.track,
            unsubscribe: None,
        })
    }
}

impl Iterator for Requests {
    type Item = Result<SendRequest, ServiceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let p = self.personalizations.next()?;
        Some(self.common.request(p))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.personalizations.size_hint()
    }
}

impl ExactSizeIterator for Requests {}

/// A unix time as RFC 3339; `Err` when it is not a time.
fn send_at(secs: Option<i64>) -> Result<Option<String>, ()> {
    match secs {
        None => Ok(None),
        Some(secs) => DateTime::from_timestamp(secs, 0)
            .map(|t| Some(t.to_rfc3339_opts(SecondsFormat::Secs, true)))
            .ok_or(()),
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
        let requests: Vec<SendRequest> =
            mail.into_requests().unwrap().map(Result::unwrap).collect();
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
        let Err(ServiceError::Validation(errors)) = mail.into_requests().map(|_| ()) else {
            panic!("refused")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["mail_settings.footer", "personalizations.0.substitutions"]
        );
    }
}
