//! Postmark's webhook bodies: one object per POST, discriminated by `RecordType` (`Delivery`,
//! `Bounce`, `SpamComplaint`, `Open`, `Click`, `SubscriptionChange`), with Postmark's field names. Postmark signs
//! nothing; its receivers authenticate with Basic credentials in the webhook URL, which
//! mailgate sends for endpoints in this format. Events Postmark has no record for (queued,
//! deferred, suppressed, cancelled) are not sent to such an endpoint.

use serde_json::{Value, json};

/// The Postmark body of a delivery queued in mailgate's body, or `None` when Postmark has no
/// record type for its event. `id` is the delivery's: a bounce's numeric `ID` is made from it.
pub fn body(standard: &str, id: &str) -> Result<Option<String>, String> {
    let event: Value =
        serde_json::from_str(standard).map_err(|e| format!("the queued body is not JSON: {e}"))?;
    let kind = event["type"].as_str().unwrap_or_default();
    let at = event["timestamp"].clone();
    let d = &event["data"];
    let tag = d["tags"][0].as_str().unwrap_or_default();
    let metadata = match &d["metadata"] {
        Value::Object(map) => Value::Object(map.clone()),
        _ => json!({}),
    };
    let smtp_message = d["smtp"]["message"].as_str().unwrap_or_default();
    let common = |record: &str| {
        json!({
            "RecordType": record,
            "ServerID": 0,
            "MessageStream": "outbound",
            "MessageID": d["email_id"],
            "Tag": tag,
            "Metadata": metadata,
        })
    };
    let mut record = match kind {
        "email.delivered" => {
            let mut r = common("Delivery");
            r["Recipient"] = d["recipient"].clone();
            r["DeliveredAt"] = at;
            r["Details"] = json!(smtp_message);
            r
        }
        // A bounce, or mail mailgate gave up on after its retries (a soft bounce).
        "email.bounced" | "email.failed" | "email.complained" => {
            let (record, kind_name, code, name) = match kind {
                "email.bounced" => ("Bounce", "HardBounce", 1, "Hard bounce"),
                "email.failed" => ("Bounce", "SoftBounce", 4096, "Soft bounce"),
                _ => ("SpamComplaint", "SpamComplaint", 512, "Spam complaint"),
            };
            let mut r = common(record);
            r["ID"] = json!(numeric_id(id));
            r["Type"] = json!(kind_name);
            r["TypeCode"] = json!(code);
            r["Name"] = json!(name);
            r["Description"] = json!(match kind {
                "email.bounced" => "The server was unable to deliver your message.",
                "email.failed" => "mailgate gave up delivering the message after its retries.",
                _ => "The subscriber explicitly marked this message as spam.",
            });
            r["Details"] = if d["detail"].is_string() {
                d["detail"].clone()
            } else {
                json!(smtp_message)
            };
            r["Email"] = d["recipient"].clone();
            r["From"] = d["from"].clone();
            r["BouncedAt"] = at;
            r["DumpAvailable"] = json!(false);
            r["Inactive"] = json!(kind != "email.failed");
            r["CanActivate"] = json!(true);
            r["Subject"] = d["subject"].clone();
            r
        }
        "email.opened" => {
            let mut r = common("Open");
            r["FirstOpen"] = d["first_open"].clone();
            r["Recipient"] = d["recipient"].clone();
            r["ReceivedAt"] = at;
            r["UserAgent"] = d["user_agent"].clone();
            r["Geo"] = json!({"IP": d["ip"]});
            r
        }
        "email.clicked" => {
            let mut r = common("Click");
            r["OriginalLink"] = d["url"].clone();
            r["ClickLocation"] = json!("HTML");
            r["Recipient"] = d["recipient"].clone();
            r["ReceivedAt"] = at;
            r["UserAgent"] = d["user_agent"].clone();
            r["Geo"] = json!({"IP": d["ip"]});
            r
        }
        // A one-click unsubscribe: Postmark's record of a recipient suppressing themselves.
        "email.unsubscribed" => {
            let mut r = common("SubscriptionChange");
            r["Recipient"] = d["recipient"].clone();
            r["ChangedAt"] = at;
            r["Origin"] = json!("Recipient");
            r["SuppressSending"] = json!(true);
            r["SuppressionReason"] = json!("ManualSuppression");
            r
        }
        // A test event goes out as mailgate queued it, so the endpoint can be checked.
        "webhook.test" => return Ok(Some(standard.to_string())),
        _ => return Ok(None),
    };
    if record["Tag"] == "" {
        record["Tag"] = Value::Null;
    }
    serde_json::to_string(&record)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// A positive number, stable per delivery, for Postmark's numeric bounce `ID`.
fn numeric_id(id: &str) -> u64 {
    let digits: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(13)
        .collect();
    u64::from_str_radix(&digits, 16).unwrap_or(0) & ((1 << 52) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_without_a_record_type_are_not_sent() {
        let queued = json!({"type": "email.queued", "timestamp": "t", "data": {}}).to_string();
        assert_eq!(body(&queued, "x").unwrap(), None);
    }

    #[test]
    fn an_unsubscribe_is_a_subscription_change() {
        let standard = json!({"type": "email.unsubscribed", "timestamp": "2026-11-28T09:00:00Z",
            "data": {"email_id": "019a", "recipient": "a@x.test", "tags": []}});
        let r: Value =
            serde_json::from_str(&body(&standard.to_string(), "d").unwrap().unwrap()).unwrap();
        assert_eq!(r["RecordType"], "SubscriptionChange");
        assert_eq!(r["Recipient"], "a@x.test");
        assert_eq!(r["SuppressSending"], true);
        assert_eq!(r["ChangedAt"], "2026-11-28T09:00:00Z");
    }

    #[test]
    fn a_delivery_record() {
        let standard = json!({"type": "email.delivered", "timestamp": "2026-11-28T09:00:00Z",
            "data": {"email_id": "019a", "recipient": "a@x.test", "smtp": {"message": "250 ok"},
                     "tags": ["welcome"], "metadata": {"user_id": "42"}}});
        let r: Value =
            serde_json::from_str(&body(&standard.to_string(), "d").unwrap().unwrap()).unwrap();
        assert_eq!(r["RecordType"], "Delivery");
        assert_eq!(r["Recipient"], "a@x.test");
        assert_eq!(r["Tag"], "welcome");
        assert_eq!(r["Metadata"], json!({"user_id": "42"}));
        assert_eq!(r["Details"], "250 ok");
    }
}
