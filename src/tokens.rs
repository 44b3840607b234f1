//! Tokens mailgate signs for itself and checks when they come back: the VERP return path that
//! names one recipient job, the open and click links of tracked mail, and the one-click
//! unsubscribe link (RFC 8058) of mail sent with `unsubscribe`.
//!
//! Each is an HMAC-SHA256 with a server key (`store::server_keys`, shared by every instance)
//! and a purpose label, so a token made for one use never verifies for another. Nothing here
//! is secret but the key; a token carries what it names, and the MAC is what makes it ours.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of MAC in a VERP local part (as hex: 16 characters) and in a tracking token.
const VERP_MAC_BYTES: usize = 8;
const LINK_MAC_BYTES: usize = 12;

/// The local part of every VERP return path starts with this.
pub const VERP_PREFIX: &str = "b-";

#[derive(Clone)]
pub struct TokenKey {
    key: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

#[derive(Clone, Copy)]
enum Purpose {
    Verp,
    Open,
    Click,
    Unsubscribe,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Verp => b"mailgate verp v1\0",
            Self::Open => b"mailgate open v1\0",
            Self::Click => b"mailgate click v1\0",
            Self::Unsubscribe => b"mailgate unsubscribe v1\0",
        }
    }
}

impl TokenKey {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.into() }
    }

    fn mac(&self, purpose: Purpose, data: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.label());
        mac.update(data);
        mac
    }

    /// `b-<recipient id>-<16 hex>`: lower case only, since some MTAs fold the case of the
    /// local part they bounce to.
    pub fn verp_local(&self, recipient_id: i64) -> String {
        let mac = self
            .mac(Purpose::Verp, &recipient_id.to_be_bytes())
            .finalize()
            .into_bytes();
        let hex: String = mac[..VERP_MAC_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{VERP_PREFIX}{recipient_id}-{hex}")
    }

    /// The recipient job a VERP local part names, if its MAC is ours.
    pub fn verp_recipient(&self, local: &str) -> Option<i64> {
        let local = local.to_ascii_lowercase();
        let rest = local.strip_prefix(VERP_PREFIX)?;
        let (id, hex) = rest.split_once('-')?;
        let id: i64 = id.parse().ok().filter(|id| *id > 0)?;
        if hex.len() != VERP_MAC_BYTES * 2 {
            return None;
        }
        let tag = (0..VERP_MAC_BYTES)
            .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        self.mac(Purpose::Verp, &id.to_be_bytes())
            .verify_truncated_left(&tag)
            .ok()?;
        Some(id)
    }

    /// The open pixel's token: the message id, signed.
    pub fn open_token(&self, message: Uuid) -> String {
        self.link_token(Purpose::Open, message.as_bytes())
    }

    pub fn verify_open(&self, token: &str) -> Option<Uuid> {
        let payload = self.verify_link(Purpose::Open, token)?;
        Uuid::from_slice(&payload).ok()
    }

    /// A rewritten link's token: the message id and the original URL, signed. The URL travels
    /// in the token, so a click costs no lookup, and only a URL mailgate put in that message
    /// verifies: the redirect can never be pointed elsewhere.
    pub fn click_token(&self, message: Uuid, url: &str) -> String {
        let mut payload = message.as_bytes().to_vec();
        payload.extend_from_slice(url.as_bytes());
        self.link_token(Purpose::Click, &payload)
    }

    pub fn verify_click(&self, token: &str) -> Option<(Uuid, String)> {
        let payload = self.verify_link(Purpose::Click, token)?;
        if payload.len() <= 16 {
            return None;
        }
        let (id, url) = payload.split_at(16);
        Some((
            Uuid::from_slice(id).ok()?,
            String::from_utf8(url.to_vec()).ok()?,
        ))
    }

    /// The one-click unsubscribe token: the project, the message and the recipient's address,
    /// signed. The project and address travel in the token, so an unsubscribe works after
    /// retention deleted the message, and it only ever suppresses the address it was made for.
    pub fn unsubscribe_token(&self, project: Uuid, message: Uuid, email: &str) -> String {
        let mut payload = project.as_bytes().to_vec();
        payload.extend_from_slice(message.as_bytes());
        payload.extend_from_slice(email.as_bytes());
        self.link_token(Purpose::Unsubscribe, &payload)
    }

    /// (project, message, address) of an unsubscribe token, if it is ours.
    pub fn verify_unsubscribe(&self, token: &str) -> Option<(Uuid, Uuid, String)> {
        let payload = self.verify_link(Purpose::Unsubscribe, token)?;
        if payload.len() <= 32 {
            return None;
        }
        let (ids, email) = payload.split_at(32);
        let (project, message) = ids.split_at(16);
        Some((
            Uuid::from_slice(project).ok()?,
            Uuid::from_slice(message).ok()?,
            String::from_utf8(email.to_vec()).ok()?,
        ))
    }

    /// `<base64url payload>.<base64url MAC>`: both URL-safe, no padding.
    fn link_token(&self, purpose: Purpose, payload: &[u8]) -> String {
        let mac = self.mac(purpose, payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(&mac[..LINK_MAC_BYTES])
        )
    }

    fn verify_link(&self, purpose: Purpose, token: &str) -> Option<Vec<u8>> {
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != LINK_MAC_BYTES {
            return None;
        }
        self.mac(purpose, &payload)
            .verify_truncated_left(&tag)
            .ok()?;
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verp_round_trips_and_refuses_edits() {
        let key = TokenKey::new(b"k1");
        let local = key.verp_local(42);
        assert!(
            local.starts_with("b-42-") && local.len() == 5 + 16,
            "{local}"
        );
        assert_eq!(key.verp_recipient(&local), Some(42));
        assert_eq!(key.verp_recipient(&local.to_uppercase()), Some(42));
        // Another recipient with this MAC, another key, a cut MAC: all refused.
        assert_eq!(key.verp_recipient(&local.replace("b-42-", "b-43-")), None);
        assert_eq!(TokenKey::new(b"k2").verp_recipient(&local), None);
        assert_eq!(key.verp_recipient(&local[..local.len() - 1]), None);
        assert_eq!(key.verp_recipient("b--1-00"), None);
        assert_eq!(key.verp_recipient("postmaster"), None);
    }

    #[test]
    fn link_tokens_verify_only_for_their_purpose_and_payload() {
        let key = TokenKey::new(b"k1");
        let id = Uuid::now_v7();
        let open = key.open_token(id);
        assert_eq!(key.verify_open(&open), Some(id));
        assert_eq!(key.verify_click(&open), None);
        let click = key.click_token(id, "https://example.com/a?b=c");
        assert_eq!(
            key.verify_click(&click),
            Some((id, "https://example.com/a?b=c".to_string()))
        );
        // The URL swapped for another, keeping the MAC.
        let (_, mac) = click.split_once('.').unwrap();
        let mut forged = id.as_bytes().to_vec();
        forged.extend_from_slice(b"https://evil.example/");
        let forged = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(forged));
        assert_eq!(key.verify_click(&forged), None);
        assert_eq!(key.verify_open("nonsense"), None);
        let project = Uuid::now_v7();
        let unsub = key.unsubscribe_token(project, id, "a@example.com");
        assert_eq!(
            key.verify_unsubscribe(&unsub),
            Some((project, id, "a@example.com".to_string()))
        );
        assert_eq!(key.verify_click(&unsub), None);
        assert_eq!(key.verify_unsubscribe(&click), None);
        // Another address under this MAC.
        let (_, mac) = unsub.split_once('.').unwrap();
        let mut forged = project.as_bytes().to_vec();
        forged.extend_from_slice(id.as_bytes());
        forged.extend_from_slice(b"b@example.com");
        let forged = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(forged));
        assert_eq!(key.verify_unsubscribe(&forged), None);
        assert!(
            click
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
    }
}
