//! Secrets at rest: small values mailgate must read back in clear (a sending domain's DKIM
//! private key) are sealed with AES-256-GCM (ring) under the server key of
//! `MAILGATE_SECRET_KEY`, never stored as they are.
//!
//! `MAILGATE_SECRET_KEY` is one key, or several separated by commas: the first seals, every
//! one opens. Each sealed value names the key that sealed it (`v1.<key id>.<base64>`), so the
//! operator rotates by putting a new key first and keeping the old one after it until nothing
//! sealed under it is left. The key id is a hash of the key, not the key.
//!
//! A value is sealed for one purpose and one row (`context`, the AEAD's associated data): a
//! sealed value copied into another row does not open there.

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD as B64};
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use sha2::{Digest, Sha256};

/// Shortest key accepted: 32 characters carry enough entropy when random (`openssl rand
/// -base64 32` gives 44).
pub const MIN_KEY_CHARS: usize = 32;

const VERSION: &str = "v1";

struct Key {
    id: String,
    aead: LessSafeKey,
}

/// The server's sealing keys: the first seals, each opens what names it.
pub struct SecretBox {
    keys: Vec<Key>,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only: they say which key, not what it is.
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.id))
            .finish()
    }
}

fn derive(secret: &str, label: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(label);
    h.update([0]);
    h.update(secret.as_bytes());
    h.finalize().into()
}

impl SecretBox {
    /// The keys of `MAILGATE_SECRET_KEY` (`new[,old…]`); each at least [`MIN_KEY_CHARS`].
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for part in secret.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.chars().count() < MIN_KEY_CHARS {
                bail!(
                    "MAILGATE_SECRET_KEY: each key must be at least {MIN_KEY_CHARS} characters (e.g. `openssl rand -base64 32`)"
                );
            }
            let id = hex(&derive(part, b"mailgate secret key id")[..4]);
            let unbound = UnboundKey::new(&AES_256_GCM, &derive(part, b"mailgate secret box"))
                .map_err(|_| anyhow::anyhow!("cannot make an AES-256-GCM key"))?;
            keys.push(Key {
                id,
                aead: LessSafeKey::new(unbound),
            });
        }
        if keys.is_empty() {
            bail!("MAILGATE_SECRET_KEY is empty");
        }
        Ok(Self {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Whether a sealed value was sealed under a key this box has.
    pub fn can_open(&self, sealed: &str) -> bool {
        key_id(sealed).is_some_and(|id| self.keys.iter().any(|k| k.id == id))
    }

    /// `plaintext` sealed under the current key for `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> anyhow::Result<String> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
        let mut data = plaintext.to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend(data);
        Ok(format!("{VERSION}.{}.{}", key.id, B64.encode(out)))
    }

    /// The plaintext of a value sealed for `context`; an error says which key is missing or
    /// that the value was changed.
    pub fn open(&self, context: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("not a sealed value");
        };
        let key = self.keys.iter().find(|k| k.id == id).with_context(|| {
            format!("sealed under key {id}, which MAILGATE_SECRET_KEY does not hold")
        })?;
        let raw = B64
            .decode(body)
            .context("a sealed value that is not base64")?;
        if raw.len() < NONCE_LEN {
            bail!("a sealed value too short to hold its nonce");
        }
        let (nonce, data) = raw.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow::anyhow!("a bad nonce"))?;
        let mut data = data.to_vec();
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| {
                anyhow::anyhow!(
                    "a sealed value that does not open: changed, or sealed for another row"
                )
            })?;
        Ok(plain.to_vec())
    }
}

/// The key id a sealed value names.
pub fn key_id(sealed: &str) -> Option<&str> {
    let mut parts = sealed.splitn(3, '.');
    (parts.next() == Some(VERSION)).then_some(())?;
    parts.next()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "first-key-first-key-first-key-first-key";
    const B: &str = "second-key-second-key-second-key-second";

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let sealer = SecretBox::new(A).unwrap();
        let sealed = sealer.seal("domain-key:1", b"private").unwrap();
        assert!(!sealed.contains("private"));
        assert_eq!(sealer.open("domain-key:1", &sealed).unwrap(), b"private");
        // Another row's context does not open it.
        assert!(sealer.open("domain-key:2", &sealed).is_err());
        // A flipped byte does not open.
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            sealer
                .open("domain-key:1", std::str::from_utf8(&tampered).unwrap())
                .is_err()
        );
        // Rotation: a new key first seals; the old one still opens what it sealed.
        let rotated = SecretBox::new(&format!("{B},{A}")).unwrap();
        assert_eq!(rotated.open("domain-key:1", &sealed).unwrap(), b"private");
        let resealed = rotated.seal("domain-key:1", b"private").unwrap();
        assert_ne!(key_id(&resealed), key_id(&sealed));
        // Without the old key, the error names the key id it needs.
        let only_new = SecretBox::new(B).unwrap();
        let err = only_new
            .open("domain-key:1", &sealed)
            .unwrap_err()
            .to_string();
        assert!(err.contains(key_id(&sealed).unwrap()), "{err}");
        assert!(!format!("{only_new:?}").contains("second-key"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(SecretBox::new("short").is_err());
        assert!(SecretBox::new(" , ").is_err());
    }
}
