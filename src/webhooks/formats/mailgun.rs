//! Mailgun's webhook body: `{"signature": {"timestamp", "token", "signature"}, "event-data":
//! {"event", "timestamp", "id", "recipient", "message": {"headers": {…}}, "tags",
//! "user-variables", "delivery-status", …}}`, with Mailgun's event names (`accepted`,
//! `delivered`, `failed` with its `severity`, `opened`, `clicked`, `complained`,
//! `unsubscribed`). The
//! signature is Mailgun's: hex HMAC-SHA256 of `timestamp + token`, keyed with the endpoint's
//! secret as its owner sees it (`whsec_…`, the string), which is what Mailgun's SDKs take as
//! the "webhook signing key". Events Mailgun has no name for (suppressed, cancelled) are not
//! sent.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Mailgun's event name (and `severity` for a failure) for a mailgate event type.
fn event_name(kind: &str) -> Option<(&'static str, Option<&'static str>)> {
    Some(match kind {
        "email.queued" => ("accepted", None),
        "email.delivered" => ("delivered", None),
        "email.bounced" => ("failed", Some("permanent")),
        // mailgate gave up after its retries.
        "email.failed" => ("failed", Some("permanent")),
        "email.deferred" | "email.delayed" => ("failed", Some("temporary")),
        "email.opened" => ("opened", None),
        "email.clicked" => ("clicked", None),
        "email.complained" => ("complained", None),
        "email.unsubscribed" => ("unsubscribed", None),
        "webhook.test" => ("test", None),
        _ => return None,
    })
}

/// The Mailgun body of a delivery queued in mailgate's body, signed with `key` at
/// `timestamp`; `None` when Mailgun has no event for it. `id` is the delivery's.
pub fn body(standard: &str, id: &str, timestamp: i64, key: &str) -> Result<Option<String>, String> {
    let event: Value =
        serde_json::from_str(standard).map_err(|e| format!("the queued body is not JSON: {e}"))?;
    let kind = event["type"].as_str().unwrap_or_default();
    let Some((name, severity)) = event_name(kind) else {
        return Ok(None);
    };
    let d = &event["data"];
    let at = event["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_micros() as f64 / 1e6)
        .unwrap_or(timestamp as f64);
    let mut data = Map::new();
    data.insert("id".into(), json!(id));
    data.insert("event".into(), json!(name));
    data.insert("timestamp".into(), json!(at));
    data.insert("recipient".into(), d["recipient"].clone());
    data.insert(
        "message".into(),
        json!({"headers": {
            "message-id": d["message_id"].as_str().map(|m| m.trim_matches(['<', '>'])),
            "from": d["from"],
            "to": d["recipient"],
            "subject": d["subject"],
        }}),
    );
    data.insert(
        "tags".into(),
        match &d["tags"] {
            Value::Array(tags) => Value::Array(tags.clone()),
            _ => json!([]),
        },
    );
    data.insert(
        "user-variables".into(),
        match &d["metadata"] {
            Value::Object(map) => Value::Object(map.clone()),
            _ => json!({}),
        },
    );
    data.insert("email-id".into(), d["email_id"].clone());
    let smtp = &d["smtp"];
    if let Some(severity) = severity {
        data.insert("severity".into(), json!(severity));
        data.insert(
            "reason".into(),
            json!(if kind == "email.bounced" {
                "bounce"
            } else {
                "generic"
            }),
        );
    }
    if matches!(name, "delivered" | "failed") {
        let code = smtp["code"].clone();
        let message = if smtp["message"].is_null() {
            d["detail"].clone()
        } else {
            smtp["message"].clone()
        };
        data.insert(
            "delivery-status".into(),
            json!({"code": code, "message": message, "description": d["detail"],
                   "attempt-no": d["attempt"]}),
        );
    }
    if matches!(name, "opened" | "clicked") {
        data.insert("ip".into(), d["ip"].clone());
        data.insert("client-info".into(), json!({"user-agent": d["user_agent"]}));
    }
    if name == "clicked" {
        data.insert("url".into(), d["url"].clone());
    }
    // Unique per attempt, as Mailgun's is: receivers may refuse a token seen before.
    let token = hex(&Sha256::digest(format!("{id}.{timestamp}").as_bytes()));
    let signature = sign(key, timestamp, &token);
    let body = json!({
        "signature": {"timestamp": timestamp.to_string(), "token": token, "signature": signature},
        "event-data": data,
    });
    serde_json::to_string(&body)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Mailgun's signature: hex HMAC-SHA256 of `timestamp` then `token`, keyed with `key`.
fn sign(key: &str, timestamp: i64, token: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(token.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounce_as_a_signed_mailgun_failure() {
        let standard = json!({"type": "email.bounced", "timestamp": "2026-11-28T09:00:00Z",
            "data": {"email_id": "019a", "message_id": "<m@x>", "recipient": "a@x.test",
                     "smtp": {"code": 550, "message": "no such user"}, "tags": ["welcome"],
                     "metadata": {"user_id": "42"}}});
        let out: Value = serde_json::from_str(
            &body(&standard.to_string(), "d1", 1_700_000_000, "whsec_k")
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        let e = &out["event-data"];
        assert_eq!(e["event"], "failed");
        assert_eq!(e["severity"], "permanent");
        assert_eq!(e["message"]["headers"]["message-id"], "m@x");
        assert_eq!(e["user-variables"], json!({"user_id": "42"}));
        assert_eq!(e["delivery-status"]["code"], 550);
        let s = &out["signature"];
        let token = s["token"].as_str().unwrap();
        assert_eq!(s["signature"], sign("whsec_k", 1_700_000_000, token));
        assert!(
            body(
                &json!({"type": "email.cancelled", "data": {}}).to_string(),
                "d",
                1,
                "k"
            )
            .unwrap()
            .is_none()
        );
    }
}
