//! SendGrid's Event Webhook: a JSON array of events (`email`, `timestamp`, `event`,
//! `sg_event_id`, `sg_message_id`, `category`, the message's custom args as top-level keys…),
//! signed with ECDSA P-256 over `timestamp + body` (`X-Twilio-Email-Event-Webhook-Signature`,
//! base64 DER, and `…-Timestamp`). Each project has one key pair; receivers verify with its
//! public key, base64 DER as SendGrid shows its own.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::DateTime;
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair},
};
use serde_json::{Map, Value, json};

/// The DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte uncompressed point.
const SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A new key pair: the private key (PKCS#8) to store and the public key to show.
pub fn generate() -> anyhow::Result<(Vec<u8>, String)> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("could not generate an ECDSA key"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow::anyhow!("generated an unusable ECDSA key"))?;
    let mut spki = SPKI_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    Ok((pkcs8.as_ref().to_vec(), STANDARD.encode(spki)))
}

/// The base64 DER signature of `timestamp + body`.
pub fn sign(private_key: &[u8], timestamp: i64, body: &str) -> Result<String, String> {
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, private_key, &rng)
        .map_err(|_| "the project's signing key is unusable".to_string())?;
    let message = format!("{timestamp}{body}");
    let signature = pair
        .sign(&rng, message.as_bytes())
        .map_err(|_| "signing failed".to_string())?;
    Ok(STANDARD.encode(signature.as_ref()))
}

/// SendGrid's event name for a mailgate event.
fn event_name(kind: &str) -> &str {
    match kind {
        "email.queued" => "processed",
        "email.delivered" => "delivered",
        "email.deferred" | "email.delayed" => "deferred",
        "email.bounced" => "bounce",
        "email.failed" | "email.suppressed" | "email.cancelled" => "dropped",
        "email.complained" => "spamreport",
        "email.opened" => "open",
        "email.clicked" => "click",
        "email.unsubscribed" => "unsubscribe",
        other => other,
    }
}

/// The SendGrid body (an array of one event) of a delivery queued in mailgate's body; `id` is
/// the delivery's.
pub fn body(standard: &str, id: &str) -> Result<String, String> {
    let event: Value =
        serde_json::from_str(standard).map_err(|e| format!("the queued body is not JSON: {e}"))?;
    let kind = event["type"].as_str().unwrap_or_default();
    let d = &event["data"];
    let timestamp = event["timestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .unwrap_or_default();
    let mut out = Map::new();
    // Custom args first, so SendGrid's own keys win a clash, as on SendGrid.
    if let Value::Object(metadata) = &d["metadata"] {
        out.extend(metadata.clone());
    }
    let name = event_name(kind);
    out.insert("email".into(), d["recipient"].clone());
    out.insert("timestamp".into(), json!(timestamp));
    out.insert("event".into(), json!(name));
    out.insert("smtp-id".into(), d["message_id"].clone());
    out.insert("sg_event_id".into(), json!(id));
    out.insert("sg_message_id".into(), d["email_id"].clone());
    out.insert("category".into(), d["tags"].clone());
    let smtp = &d["smtp"];
    match name {
        "delivered" | "deferred" => {
            out.insert("response".into(), smtp["message"].clone());
            out.insert("attempt".into(), json!(d["attempt"].to_string()));
        }
        "bounce" => {
            out.insert("type".into(), json!("bounce"));
            out.insert("reason".into(), smtp["message"].clone());
            out.insert("status".into(), smtp["enhanced"].clone());
        }
        "dropped" => {
            let reason = match kind {
                "email.suppressed" => json!("Suppressed address"),
                "email.cancelled" => json!("Cancelled"),
                _ if !d["detail"].is_null() => d["detail"].clone(),
                _ => smtp["message"].clone(),
            };
            out.insert("reason".into(), reason);
        }
        "click" => {
            out.insert("url".into(), d["url"].clone());
            out.insert("useragent".into(), d["user_agent"].clone());
            out.insert("ip".into(), d["ip"].clone());
        }
        "open" => {
            out.insert("useragent".into(), d["user_agent"].clone());
            out.insert("ip".into(), d["ip"].clone());
        }
        _ => {}
    }
    serde_json::to_string(&json!([Value::Object(out)])).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

    #[test]
    fn signatures_verify_with_the_shown_public_key() {
        let (private, public) = generate().unwrap();
        let signature = sign(&private, 1700000000, "[{}]").unwrap();
        let spki = STANDARD.decode(public).unwrap();
        assert_eq!(spki[..26], SPKI_PREFIX);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki[26..])
            .verify(b"1700000000[{}]", &STANDARD.decode(signature).unwrap())
            .unwrap();
    }

    #[test]
    fn a_delivery_as_a_sendgrid_event() {
        let standard = json!({"type": "email.delivered", "timestamp": "2026-11-28T09:00:00.000000Z",
            "data": {"email_id": "019a", "message_id": "<m@x>", "recipient": "a@x.test",
                     "smtp": {"message": "250 ok"}, "attempt": 1, "tags": ["welcome"],
                     "metadata": {"user_id": "42", "event": "not this"}}});
        let events: Value =
            serde_json::from_str(&body(&standard.to_string(), "d1").unwrap()).unwrap();
        let e = &events[0];
        assert_eq!(e["event"], "delivered");
        assert_eq!(e["email"], "a@x.test");
        assert_eq!(e["user_id"], "42");
        assert_eq!(e["category"], json!(["welcome"]));
        assert_eq!(e["timestamp"], 1795856400);
    }
}
