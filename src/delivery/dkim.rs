//! DKIM signing at relay time. The queue keeps the MIME exactly as accepted; each attempt
//! signs those bytes for the From header's domain and prepends the `DKIM-Signature` header.
//! Signing per attempt keeps the timestamp honest and costs about a millisecond.

use std::{
    collections::HashMap,
    fmt,
    path::Path,
    sync::{Arc, RwLock},
};

use anyhow::{Context, bail};
use mail_auth::{
    common::{
        crypto::{Ed25519Key, RsaKey, Sha256, SigningKey},
        headers::HeaderWriter,
    },
    dkim::{Canonicalization, DkimSigner, Done},
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject};
use uuid::Uuid;

use crate::config::{DkimAlgorithm, DkimKeyConfig};

/// The headers signed: those a receiver shows or that change what the body means, and the
/// one-click unsubscribe pair (RFC 8058 §4 asks for both to be signed). mail-auth lists an
/// absent one in `h=` too, so it cannot be added to the message after signing.
const SIGNED_HEADERS: [&str; 11] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

struct DomainKey {
    selector: String,
    algorithm: DkimAlgorithm,
    signer: Signer,
}

/// Every configured key, by lower-case domain; and the keys of sending domains (the
/// `/v1/domains` resources), by project and domain, which win over the configured ones for
/// their project's mail.
#[derive(Default)]
pub struct DkimKeys {
    by_domain: HashMap<String, DomainKey>,
    resources: RwLock<ResourceKeys>,
}

/// Sending domains' signers by project and domain (RSA, then Ed25519 when the domain has
/// one: each message gets a signature from each); shared, so a reload swaps the map whole
/// and mail never waits for (or misses) a key while the new map is built.
type ResourceKeys = HashMap<Uuid, HashMap<String, Vec<Arc<DomainKey>>>>;

/// A sending domain's signing key, in clear, as `set_resource_keys` takes it.
pub struct ResourceKey {
    pub project: Uuid,
    /// A-label domain.
    pub domain: String,
    pub algorithm: DkimAlgorithm,
    pub selector: String,
    /// PKCS#8 DER of the key.
    pub pkcs8: Vec<u8>,
}

/// A new RSA-2048 key for a sending domain: its PKCS#8 DER (to seal and keep), and its
/// public half as DKIM publishes it in `p=` (base64 of the SubjectPublicKeyInfo).
pub fn generate_rsa() -> anyhow::Result<(Vec<u8>, String)> {
    use base64::Engine;
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .context("generating an RSA key")?;
    let private = key.to_pkcs8_der().context("encoding the RSA key")?;
    let public = key
        .to_public_key()
        .to_public_key_der()
        .context("encoding the public key")?;
    Ok((
        private.as_bytes().to_vec(),
        base64::engine::general_purpose::STANDARD.encode(public.as_bytes()),
    ))
}

/// A new Ed25519 key for a sending domain: its PKCS#8 DER, and its public half as RFC 8463
/// publishes it in `p=` (base64 of the 32-byte key itself, not a SubjectPublicKeyInfo).
pub fn generate_ed25519() -> anyhow::Result<(Vec<u8>, String)> {
    use base64::Engine;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("generating an Ed25519 key failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|e| anyhow::anyhow!("reading the new Ed25519 key: {e}"))?;
    Ok((
        pkcs8.as_ref().to_vec(),
        base64::engine::general_purpose::STANDARD.encode(pair.public_key().as_ref()),
    ))
}

impl fmt::Debug for DkimKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys themselves.
        f.debug_list().entries(self.domains()).finish()
    }
}

impl DkimKeys {
    /// Reads and checks every key file; any unreadable or mismatched key stops start-up.
    pub fn load(configs: &[DkimKeyConfig]) -> anyhow::Result<Self> {
        let mut by_domain = HashMap::new();
        for c in configs {
            let domain = normalize_domain(&c.domain);
            let signer = load_signer(c).with_context(|| {
                format!(
                    "DKIM key for {} ({})",
                    c.domain,
                    c.private_key_file.display()
                )
            })?;
            by_domain.insert(
                domain,
                DomainKey {
                    selector: c.selector.trim().to_string(),
                    algorithm: c.algorithm,
                    signer,
                },
            );
        }
        Ok(Self {
            by_domain,
            resources: RwLock::default(),
        })
    }

    /// Whether no key is configured (sending domains' keys aside).
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// Replaces every sending domain's key with `keys`; a key already loaded under the same
    /// selector is kept as it is. A key that does not load is left out (logged): that
    /// domain's mail goes out as the configured keys sign it.
    pub fn set_resource_keys(&self, keys: Vec<ResourceKey>) {
        let mut next = ResourceKeys::new();
        for k in keys {
            let reuse = self
                .resources
                .read()
                .expect("not poisoned")
                .get(&k.project)
                .and_then(|by| by.get(&k.domain))
                .and_then(|keys| keys.iter().find(|d| d.selector == k.selector))
                .cloned();
            let key = match reuse {
                Some(key) => key,
                None => match resource_signer(&k) {
                    Ok(signer) => Arc::new(DomainKey {
                        selector: k.selector.clone(),
                        algorithm: k.algorithm,
                        signer,
                    }),
                    Err(err) => {
                        tracing::error!(domain = %k.domain, error = %format!("{err:#}"), "a sending domain's DKIM key does not load");
                        continue;
                    }
                },
            };
            let keys = next
                .entry(k.project)
                .or_default()
                .entry(k.domain)
                .or_default();
            keys.push(key);
            // RSA first: a verifier that stops at the first signature it can check most
            // likely checks RSA.
            keys.sort_by_key(|k| k.algorithm != DkimAlgorithm::RsaSha256);
        }
        *self.resources.write().expect("not poisoned") = next;
    }

    /// The message with `DKIM-Signature` headers in front: signed with the keys of the
    /// project's sending domain that covers the From domain (one signature per key), else
    /// with a configured key; `None` when neither covers it.
    pub fn sign_for(&self, project: Uuid, mime: &[u8]) -> Option<Vec<u8>> {
        let has_domains = self
            .resources
            .read()
            .expect("not poisoned")
            .contains_key(&project);
        if has_domains {
            let from = from_domain(mime)?;
            let keys = self
                .resources
                .read()
                .expect("not poisoned")
                .get(&project)
                .and_then(|domains| nearest(domains, &from).cloned());
            if let Some(keys) = keys {
                let mut headers = String::new();
                for key in &keys {
                    headers.push_str(&signature(key, &from, mime)?);
                }
                return Some(prepend(&headers, mime));
            }
        }
        self.sign(mime)
    }

    /// `selector._domainkey.domain (algorithm)` for each key, sorted, for logs and doctor.
    pub fn domains(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .by_domain
            .iter()
            .map(|(d, k)| format!("{}._domainkey.{d} ({})", k.selector, k.algorithm.as_str()))
            .collect();
        out.sort();
        out
    }

    /// The message with a `DKIM-Signature` header in front, or `None` when no key covers
    /// the From domain (the message then goes unsigned).
    pub fn sign(&self, mime: &[u8]) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        let from = from_domain(mime)?;
        let key = nearest(&self.by_domain, &from)?;
        Some(prepend(&signature(key, &from, mime)?, mime))
    }
}

/// The domain's own entry (a key, a return path), else the nearest parent's:
/// `news.example.com` mail signed `d=example.com` still aligns for DMARC in relaxed mode.
pub(crate) fn nearest<'a, K>(keys: &'a HashMap<String, K>, domain: &str) -> Option<&'a K> {
    let mut d = domain;
    loop {
        if let Some(k) = keys.get(d) {
            return Some(k);
        }
        d = d.split_once('.')?.1;
    }
}

/// The `DKIM-Signature` header of `mime` under `key`, or `None` when signing fails.
fn signature(key: &DomainKey, from: &str, mime: &[u8]) -> Option<String> {
    let header = match &key.signer {
        Signer::Rsa(s) => s.sign(mime).map(|sig| sig.to_header()),
        Signer::Ed25519(s) => s.sign(mime).map(|sig| sig.to_header()),
    };
    match header {
        Ok(header) => Some(join_final_fold(header)),
        Err(err) => {
            // Unsigned mail may still be delivered; a stuck queue helps nobody.
            tracing::warn!(domain = %from, error = %err, "DKIM signing failed; sending unsigned");
            None
        }
    }
}

fn prepend(headers: &str, mime: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len() + mime.len());
    out.extend_from_slice(headers.as_bytes());
    out.extend_from_slice(mime);
    out
}

fn resource_signer(k: &ResourceKey) -> anyhow::Result<Signer> {
    match k.algorithm {
        DkimAlgorithm::RsaSha256 => {
            let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.pkcs8.clone()));
            rsa_signer(der, &k.domain, &k.selector)
        }
        DkimAlgorithm::Ed25519Sha256 => ed25519_signer(&k.pkcs8, &k.domain, &k.selector),
    }
}

fn rsa_signer(der: PrivateKeyDer<'_>, domain: &str, selector: &str) -> anyhow::Result<Signer> {
    let key = RsaKey::<Sha256>::from_key_der(der)
        .map_err(|e| anyhow::anyhow!("not an RSA private key: {e}"))?;
    Ok(Signer::Rsa(configured(key, domain, selector)))
}

/// Every key signs the same way: `SIGNED_HEADERS`, relaxed/relaxed.
fn configured<K: SigningKey>(key: K, domain: &str, selector: &str) -> DkimSigner<K, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// Lower-case A-labels (RFC 8616: DKIM names domains in A-labels), so a key configured as
/// `bücher.example` or `xn--bcher-kva.example` signs mail from either spelling.
pub fn normalize_domain(d: &str) -> String {
    let d = d.trim().trim_end_matches('.');
    idna::domain_to_ascii(d).unwrap_or_else(|_| d.to_ascii_lowercase())
}

/// The domain of the first From address, as the receiver reads it.
pub fn from_domain(mime: &[u8]) -> Option<String> {
    let message = mail_parser::MessageParser::new().parse_headers(mime)?;
    let address = message.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(normalize_domain(domain))
}

fn load_signer(c: &DkimKeyConfig) -> anyhow::Result<Signer> {
    let der = read_pem(&c.private_key_file)?;
    let domain = normalize_domain(&c.domain);
    let selector = c.selector.trim();
    Ok(match c.algorithm {
        DkimAlgorithm::RsaSha256 => rsa_signer(der, &domain, selector)?,
        DkimAlgorithm::Ed25519Sha256 => {
            let PrivateKeyDer::Pkcs8(pkcs8) = der else {
                bail!("an Ed25519 key must be PKCS#8 (`openssl genpkey -algorithm ed25519`)");
            };
            ed25519_signer(pkcs8.secret_pkcs8_der(), &domain, selector)?
        }
    })
}

fn ed25519_signer(pkcs8: &[u8], domain: &str, selector: &str) -> anyhow::Result<Signer> {
    let key = Ed25519Key::from_pkcs8_der(pkcs8)
        .map_err(|e| anyhow::anyhow!("not an Ed25519 private key: {e}"))?;
    Ok(Signer::Ed25519(configured(key, domain, selector)))
}

fn read_pem(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).context("cannot read the key file")?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| anyhow::anyhow!("no PEM private key in the file: {e}"))
}

/// mail-auth folds its header every 76 columns, and when the `b=` value ends exactly there it
/// writes the fold before the closing `;` as well. It signed the header with `b=` empty and no
/// fold (`b=;`), but a verifier deletes only the value and keeps the fold (`b= ;` once
/// relaxed), so such a signature never verifies. Whether it happens depends only on lengths
/// (domain, selector, key, signed header names), so it hit every message of one domain at
/// once: the `;` goes back on the line it ends.
fn join_final_fold(header: String) -> String {
    match header.strip_suffix("\r\n\t;\r\n") {
        Some(head) => format!("{head};\r\n"),
        None => header,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_semicolon_is_never_folded_alone() {
        let folded = "DKIM-Signature: v=1; h=From;\r\n\tb=abc\r\n\tdef==\r\n\t;\r\n";
        assert_eq!(
            join_final_fold(folded.into()),
            "DKIM-Signature: v=1; h=From;\r\n\tb=abc\r\n\tdef==;\r\n"
        );
        let fine = "DKIM-Signature: v=1; h=From;\r\n\tb=abcdef==;\r\n";
        assert_eq!(join_final_fold(fine.into()), fine);
    }

    #[test]
    fn from_domain_reads_the_header_not_the_envelope() {
        let mime = b"From: \"Ann\" <ann@News.Example.COM>\r\nTo: b@example.org\r\n\r\nhi\r\n";
        assert_eq!(from_domain(mime).as_deref(), Some("news.example.com"));
        assert_eq!(from_domain(b"To: b@example.org\r\n\r\nhi\r\n"), None);
        let utf8 = "From: josé@Bücher.example\r\n\r\nhi\r\n";
        assert_eq!(
            from_domain(utf8.as_bytes()).as_deref(),
            Some("xn--bcher-kva.example")
        );
    }

    #[test]
    fn a_generated_ed25519_key_loads_and_signs_beside_the_rsa_key() {
        let (pkcs8, public) = generate_ed25519().unwrap();
        use base64::Engine;
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&public)
                .unwrap()
                .len(),
            32
        );
        let (rsa, _) = generate_rsa().unwrap();
        let keys = DkimKeys::default();
        let project = Uuid::now_v7();
        keys.set_resource_keys(vec![
            ResourceKey {
                project,
                domain: "example.com".into(),
                algorithm: DkimAlgorithm::Ed25519Sha256,
                selector: "mg1ed".into(),
                pkcs8,
            },
            ResourceKey {
                project,
                domain: "example.com".into(),
                algorithm: DkimAlgorithm::RsaSha256,
                selector: "mg1".into(),
                pkcs8: rsa,
            },
        ]);
        let signed = keys
            .sign_for(
                project,
                b"From: a@example.com\r\nTo: b@example.org\r\n\r\nhi\r\n",
            )
            .unwrap();
        let text = String::from_utf8(signed).unwrap();
        let rsa_at = text.find("a=rsa-sha256").unwrap();
        let ed_at = text.find("a=ed25519-sha256").unwrap();
        assert!(rsa_at < ed_at, "{text}");
        assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    }

    #[test]
    fn a_missing_key_file_is_a_clear_error() {
        let err = DkimKeys::load(&[DkimKeyConfig {
            domain: "example.com".into(),
            selector: "mg1".into(),
            algorithm: DkimAlgorithm::RsaSha256,
            private_key_file: "/nonexistent/key.pem".into(),
        }])
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("DKIM key for example.com"), "{text}");
        assert!(text.contains("/nonexistent/key.pem"), "{text}");
    }
}
