//! Resend's webhook body, from mailgate's: `{"type", "created_at", "data": {"email_id",
//! "created_at", "from", "to", "subject", "tags": {name: value}, …}}`, with Resend's event
//! names and, for bounces, failures and clicks, Resend's extra objects.

use serde_json::{Map, Value, json};

/// Resend's name for a mailgate event type; mailgate's own name when Resend has none.
fn event_type(standard: &str, status: &str) -> String {
    match (standard, status) {
        ("email.queued", "scheduled") => "email.scheduled",
        ("email.queued", _) => "email.sent",
        ("email.deferred" | "email.delayed", _) => "email.delivery_delayed",
        ("email.cancelled", _) => "email.canceled",
        (other, _) => other,
    }
    .to_string()
}

/// The Resend body of a `domain.*` event: `{"type", "created_at", "data": <the domain>}`.
pub fn domain_body(standard: &str) -> Result<String, String> {
    let event: Value =
        serde_json::from_str(standard).map_err(|e| format!("the queued body is not JSON: {e}"))?;
    serde_json::to_string(&json!({
        "type": event["type"],
        "created_at": event["timestamp"],
        "data": event["data"],
    }))
    .map_err(|e| e.to_string())
}

/// The Resend body of a delivery queued in mailgate's body.
pub fn body(standard: &str) -> Result<String, String> {
    let event: Value =
        serde_json::from_str(standard).map_err(|e| format!("the queued body is not JSON: {e}"))?;
    let kind = event["type"].as_str().unwrap_or_default();
    let at = event["timestamp"].clone();
    let d = &event["data"];
    let status = d["status"].as_str().unwrap_or_default();
    let mut data = Map::new();
    data.insert("email_id".into(), d["email_id"].clone());
    data.insert("created_at".into(), at.clone());
    data.insert("from".into(), d["from"].clone());
    data.insert(
        "to".into(),
        match &d["recipient"] {
            Value::Null => json!([]),
            one => json!([one]),
        },
    );
    data.insert("subject".into(), d["subject"].clone());
    data.insert("message_id".into(), d["message_id"].clone());
    // Resend's send-side tags become metadata entries; its events show them as an object.
    data.insert(
        "tags".into(),
        match &d["metadata"] {
            Value::Object(map) => Value::Object(map.clone()),
            _ => json!({}),
        },
    );
    let smtp_message = d["smtp"]["message"].clone();
    match kind {
        "email.bounced" => {
            let soft = d["dsn"]["status"]
                .as_str()
                .is_some_and(|s| s.starts_with('4'));
            data.insert(
                "bounce".into(),
                json!({
                    "type": if soft { "Transient" } else { "Permanent" },
                    "subType": "General",
                    "message": if smtp_message.is_null() { d["detail"].clone() } else { smtp_message },
                }),
            );
        }
        "email.failed" => {
            let reason = if d["detail"].is_null() {
                smtp_message
            } else {
                d["detail"].clone()
            };
            data.insert("failed".into(), json!({ "reason": reason }));
        }
        "email.clicked" => {
            data.insert(
                "click".into(),
                json!({"link": d["url"], "userAgent": d["user_agent"], "ipAddress": d["ip"], "timestamp": at}),
            );
        }
        "email.opened" => {
            data.insert(
                "open".into(),
                json!({"userAgent": d["user_agent"], "ipAddress": d["ip"], "timestamp": at}),
            );
        }
        _ => {}
    }
    let body = json!({
        "type": event_type(kind, status),
        "created_at": at,
        "data": Value::Object(data),
    });
    serde_json::to_string(&body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounce_in_resends_words() {
        let standard = json!({
            "type": "email.bounced", "timestamp": "2026-11-28T09:00:00.000000Z",
            "data": {"email_id": "019a", "message_id": "<m@x>", "recipient": "a@x.test",
                     "status": "bounced", "smtp": {"code": 550, "enhanced": "5.1.1",
                     "message": "no such user"}, "from": "f@x.test", "subject": "s",
                     "tags": ["category"], "metadata": {"category": "welcome"}}
        });
        let body: Value = serde_json::from_str(&body(&standard.to_string()).unwrap()).unwrap();
        assert_eq!(body["type"], "email.bounced");
        assert_eq!(body["data"]["to"], json!(["a@x.test"]));
        assert_eq!(body["data"]["tags"], json!({"category": "welcome"}));
        assert_eq!(body["data"]["bounce"]["type"], "Permanent");
        assert_eq!(body["data"]["bounce"]["message"], "no such user");
    }

    #[test]
    fn queued_is_sent_or_scheduled() {
        assert_eq!(event_type("email.queued", "queued"), "email.sent");
        assert_eq!(event_type("email.queued", "scheduled"), "email.scheduled");
        assert_eq!(
            event_type("email.deferred", "deferred"),
            "email.delivery_delayed"
        );
        assert_eq!(event_type("webhook.test", ""), "webhook.test");
    }
}
