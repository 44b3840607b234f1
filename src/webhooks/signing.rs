//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed
//! with the bytes behind a `whsec_<base64>` secret; several space-separated during a rotation.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// 256 bits of key, as the spec recommends (24 to 64 bytes).
const KEY_BYTES: usize = 32;

/// An endpoint's signing secret as shown to its owner (`whsec_…`).
/// Debug never prints it: secrets stay out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self(format!("{PREFIX}{}", STANDARD.encode(key)))
    }

    /// A stored secret; `None` when it is not `whsec_<base64>` of a usable key.
    pub fn parse(raw: &str) -> Option<Self> {
        let key = STANDARD.decode(raw.strip_prefix(PREFIX)?).ok()?;
        (!key.is_empty()).then(|| Self(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn key(&self) -> Vec<u8> {
        STANDARD
            .decode(&self.0[PREFIX.len()..])
            .expect("checked at parse or generate")
    }

    /// `v1,<signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key()).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// The `webhook-signature` header value: one signature per live secret, newest first.
pub fn signature_header(
    secrets: &[&WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_spec_example() {
        // The example vector of the Standard Webhooks specification.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn generated_secrets_parse_and_never_print() {
        let s = WebhookSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(s.expose()), Some(s.clone()));
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
        assert!(WebhookSecret::parse("whsec_").is_none());
        assert!(WebhookSecret::parse("nope").is_none());
    }

    #[test]
    fn rotation_signs_with_every_secret() {
        let (a, b) = (WebhookSecret::generate(), WebhookSecret::generate());
        let header = signature_header(&[&a, &b], "id", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts, [a.sign("id", 1, b"{}"), b.sign("id", 1, b"{}")]);
    }
}
