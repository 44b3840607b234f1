//! Mailgun's batch sending: a send with `recipient-variables` (a JSON object keyed by
//! recipient address) is one message per `to` recipient, each addressed to that recipient
//! alone (the others are not shown) and with its own values: `%recipient.KEY%` in the
//! subject, text and html is replaced by the recipient's `KEY` (HTML-escaped in the html),
//! and a stored template gets them as the variable `recipient`. Cc and bcc get every
//! message, as with Mailgun. Up to 1000 `to` recipients, as Mailgun allows.
//!
//! The messages are made one at a time, as the batch core prepares them: it charges them all
//! first, then holds no more than `http.max_request_bytes_rendered` of rendered mail.

use serde_json::{Map, Value};

use super::super::address::split_list;
use crate::api::{email_request::SendRequest, error::ServiceError};

/// Most `to` recipients of one batch send, as Mailgun allows.
pub const MAX_RECIPIENTS: usize = 1000;

/// The field that makes a send a batch.
pub const FIELD: &str = "recipient-variables";

/// The recipients' values, read from the field: an object of objects.
pub fn parse(raw: &str) -> Result<Map<String, Value>, ServiceError> {
    let refuse = || {
        ServiceError::validation(
            FIELD,
            "must be a JSON object of objects keyed by recipient address",
        )
    };
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) if map.values().all(Value::is_object) => Ok(map
            .into_iter()
            .map(|(address, values)| (address.trim().to_ascii_lowercase(), values))
            .collect()),
        _ => Err(refuse()),
    }
}

/// The `to` recipients of the batch, each as given (`Name <a@x.test>` or `a@x.test`).
pub fn recipients(base: &SendRequest) -> Result<Vec<String>, ServiceError> {
    let to: Vec<String> = match &base.to {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .flat_map(split_list)
            .collect(),
        _ => Vec::new(),
    };
    if to.is_empty() {
        return Err(ServiceError::validation(
            "to",
            "batch sending needs at least one recipient in to",
        ));
    }
    if to.len() > MAX_RECIPIENTS {
        return Err(ServiceError::validation(
            "to",
            format!(
                "{} recipients given; a batch send has at most {MAX_RECIPIENTS}",
                to.len()
            ),
        ));
    }
    Ok(to)
}

/// The message for one recipient: `base` addressed to it alone, with its values.
pub fn personal(
    mut request: SendRequest,
    recipient: String,
    values: &Map<String, Value>,
) -> SendRequest {
    let empty = Map::new();
    let mine = values
        .get(&bare(&recipient).to_ascii_lowercase())
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    request.to = Some(Value::Array(vec![Value::String(recipient)]));
    request.subject = request.subject.map(|s| substitute(&s, mine, false));
    request.text = request.text.map(|s| substitute(&s, mine, false));
    request.html = request.html.map(|s| substitute(&s, mine, true));
    if request.template.is_some() {
        let mut variables = match request.variables.take() {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        variables.insert("recipient".into(), Value::Object(mine.clone()));
        request.variables = Some(Value::Object(variables));
    }
    request
}

/// The address of `Name <a@x.test>`, or the whole when there are no angle brackets.
fn bare(recipient: &str) -> &str {
    match (recipient.rfind('<'), recipient.rfind('>')) {
        (Some(open), Some(close)) if open < close => recipient[open + 1..close].trim(),
        _ => recipient.trim(),
    }
}

/// `%recipient.KEY%` replaced by the recipient's `KEY` (a string as it is, anything else as
/// JSON); a key the recipient lacks stays as written.
fn substitute(text: &str, values: &Map<String, Value>, html: bool) -> String {
    if !text.contains("%recipient.") {
        return text.to_string();
    }
    let mut out = text.to_string();
    for (key, value) in values {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let value = if html { escape(&value) } else { value };
        out = out.replace(&format!("%recipient.{key}%"), &value);
    }
    out
}

/// Text as HTML: what a recipient's value cannot be taken for markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(to: Value) -> SendRequest {
        serde_json::from_value(json!({
            "from": "a@acme.test", "to": to, "subject": "Hi %recipient.name%",
            "text": "n=%recipient.n% %recipient.missing%", "html": "<p>%recipient.name%</p>",
        }))
        .unwrap()
    }

    #[test]
    fn each_recipient_gets_its_own_values_alone() {
        let values =
            parse(r#"{"Ada@X.test": {"name": "Ada <3", "n": 1}, "b@x.test": {"name": "Bo"}}"#)
                .unwrap();
        let base = request(json!(["Ada L <ada@x.test>", "b@x.test, c@x.test"]));
        let to = recipients(&base).unwrap();
        assert_eq!(to, ["Ada L <ada@x.test>", "b@x.test", "c@x.test"]);
        let ada = personal(base.clone(), to[0].clone(), &values);
        assert_eq!(ada.to, Some(json!(["Ada L <ada@x.test>"])));
        assert_eq!(ada.subject.as_deref(), Some("Hi Ada <3"));
        assert_eq!(ada.text.as_deref(), Some("n=1 %recipient.missing%"));
        assert_eq!(ada.html.as_deref(), Some("<p>Ada &lt;3</p>"));
        let c = personal(base, to[2].clone(), &values);
        assert_eq!(c.subject.as_deref(), Some("Hi %recipient.name%"));
    }

    #[test]
    fn bad_values_and_too_many_recipients_are_refused() {
        assert!(parse("[]").is_err());
        assert!(parse(r#"{"a@x.test": 1}"#).is_err());
        let many: Vec<Value> = (0..=MAX_RECIPIENTS)
            .map(|i| json!(format!("r{i}@x.test")))
            .collect();
        assert!(recipients(&request(Value::Array(many))).is_err());
    }
}
