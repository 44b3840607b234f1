//! MTA-STS (RFC 8461): a domain says in DNS (`_mta-sts.<domain> TXT "v=STSv1; id=…"`) that it
//! publishes a policy at `https://mta-sts.<domain>/.well-known/mta-sts.txt`: a mode, the MX
//! host patterns mail may go to, and how long the policy holds (`max_age`).
//!
//! Policies are cached in Postgres (`store::mta_sts`), so every instance shares them and a
//! restart keeps them. A policy is fetched again when the TXT `id` changes or `max_age`
//! runs out; when that refresh fails, the cached policy stays in use until it expires (§5.1).
//! The fetch goes through the same resolver as MX lookups (`[dns]`), to public addresses
//! only (unless the relay allows private MX), over verified HTTPS, without redirects, with
//! bounded time and size.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use mail_auth::{common::parse::TxtRecordParser, mta_sts::MtaSts};
use rustls::RootCertStore;
use sqlx::PgPool;

use super::tlsrpt::Failure;
use crate::{
    delivery::dns::{Dns, is_private},
    store,
};

/// RFC 8461 §3.3: a policy body is at most 64 KiB.
const MAX_POLICY_BYTES: usize = 64 * 1024;
/// RFC 8461 §3.2: `max_age` is at most a year (31557600 seconds).
const MAX_AGE_LIMIT: u32 = 31_557_600;
/// After a failed fetch of a domain's policy, this process waits this long before fetching
/// it again: a broken policy host must not slow every attempt to the domain by a timeout.
const REFETCH_AFTER_FAILURE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "enforce" => Some(Mode::Enforce),
            "testing" => Some(Mode::Testing),
            "none" => Some(Mode::None),
            _ => None,
        }
    }
}

/// One domain's policy, as fetched (or cached) under a TXT `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicy {
    pub id: String,
    pub mode: Mode,
    /// MX patterns: `mail.example.com`, or `*.example.com` for one label under it.
    pub mx: Vec<String>,
    pub max_age: u32,
}

impl StsPolicy {
    /// Parses a policy body (§3.2): `key: value` lines; `version: STSv1`, `mode`, `max_age`
    /// and (unless the mode is `none`) at least one `mx` are required; unknown keys are
    /// ignored.
    pub fn parse(id: &str, body: &str) -> Result<Self, String> {
        let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
        for line in body.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(format!("not a `key: value` line: {line:?}"));
            };
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value.to_string()),
                "mode" => {
                    mode =
                        Some(Mode::parse(value).ok_or_else(|| format!("unknown mode {value:?}"))?)
                }
                "max_age" => {
                    let n = value
                        .parse::<u32>()
                        .ok()
                        .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| format!("max_age {value:?} is not a number of seconds"))?;
                    max_age = Some(n.min(MAX_AGE_LIMIT));
                }
                "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("no `version: STSv1` line".into());
        }
        let mode = mode.ok_or("no `mode` line")?;
        let max_age = max_age.ok_or("no `max_age` line")?;
        if mx.is_empty() && mode != Mode::None {
            return Err("no `mx` line".into());
        }
        Ok(Self {
            id: id.to_string(),
            mode,
            mx,
            max_age,
        })
    }

    /// Whether `host` matches one of the policy's `mx` patterns (§4.1): the name itself, or
    /// `*.` and exactly one more label on the left.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => *pattern == host,
            })
    }

    /// The policy as `key: value` lines, as a TLS-RPT report gives it (RFC 8460 §4.4:
    /// `policy-string`), rebuilt from what was parsed.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            "version: STSv1".to_string(),
            format!("mode: {}", self.mode.as_str()),
        ];
        lines.extend(self.mx.iter().map(|mx| format!("mx: {mx}")));
        lines.push(format!("max_age: {}", self.max_age));
        lines
    }

    fn from_cache(row: store::mta_sts::CachedPolicy) -> Option<Self> {
        Some(Self {
            id: row.policy_id,
            mode: Mode::parse(&row.mode)?,
            mx: row.mx,
            max_age: row.max_age.max(0) as u32,
        })
    }
}

/// What a lookup found: the policy to apply, and any failure on the way.
#[derive(Debug, Default)]
pub struct Found {
    pub policy: Option<Arc<StsPolicy>>,
    pub error: Option<String>,
    /// What `error` is in TLS-RPT's terms (RFC 8460 §4.3.1).
    pub failure: Option<Failure>,
}

/// A failed fetch: the TXT id it was for, when, and why (in TLS-RPT's terms and in words).
type FailedFetch = (String, Instant, (Failure, String));

/// Where policies come from: the cache in Postgres, DNS, and the domains' HTTPS servers.
pub struct Source {
    pool: PgPool,
    dns: Arc<Dns>,
    roots: Arc<RootCertStore>,
    timeout: Duration,
    /// Per domain: the TXT id whose fetch failed last, when, and why.
    failed: Mutex<HashMap<String, FailedFetch>>,
    /// Per domain: the policy Postgres had for it, lately (with when it expires).
    cached: super::memo::Memo<Option<(StsPolicy, DateTime<Utc>)>>,
}

impl Source {
    pub fn new(pool: PgPool, dns: Arc<Dns>, roots: Arc<RootCertStore>, timeout: Duration) -> Self {
        Self {
            pool,
            dns,
            roots,
            timeout,
            failed: Mutex::default(),
            cached: Default::default(),
        }
    }

    /// The policy cached in Postgres for `domain` while within its `max_age`, read at most
    /// once a minute per domain (see `memo`).
    async fn cached(&self, domain: &str) -> Option<StsPolicy> {
        let now = Utc::now();
        if let Some(known) = self.cached.get(domain) {
            return known
                .filter(|(_, expires_at)| *expires_at > now)
                .map(|(policy, _)| policy);
        }
        match store::mta_sts::current(&self.pool, domain).await {
            Ok(row) => {
                let found = row.and_then(|row| {
                    let expires_at = row.expires_at;
                    StsPolicy::from_cache(row).map(|policy| (policy, expires_at))
                });
                self.cached.put(domain, found.clone());
                found.map(|(policy, _)| policy)
            }
            Err(err) => {
                tracing::warn!(%domain, error = %err, "reading the MTA-STS policy cache");
                None
            }
        }
    }

    /// `domain`'s policy now: the cached one while the TXT `id` is unchanged and `max_age`
    /// has not run out, else a fresh fetch; the cached one again when that fails.
    pub async fn policy(&self, domain: &str, allow_private: bool) -> Found {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let cached = self.cached(&domain).await;
        let id = match self.txt_id(&domain).await {
            Ok(Some(id)) => id,
            // No record: a cached policy still holds until it expires (§5.1).
            Ok(None) => {
                return Found {
                    policy: cached.map(Arc::new),
                    ..Found::default()
                };
            }
            Err(why) => {
                return Found {
                    policy: cached.map(Arc::new),
                    error: Some(why),
                    failure: Some(Failure::StsPolicyFetchError),
                };
            }
        };
        if let Some(policy) = cached.as_ref().filter(|p| p.id == id) {
            return Found {
                policy: Some(Arc::new(policy.clone())),
                ..Found::default()
            };
        }
        let recent_failure = self
            .failed
            .lock()
            .expect("not poisoned")
            .get(&domain)
            .filter(|(failed_id, at, _)| *failed_id == id && at.elapsed() < REFETCH_AFTER_FAILURE)
            .map(|(_, _, why)| why.clone());
        if let Some((failure, why)) = recent_failure {
            return Found {
                policy: cached.map(Arc::new),
                error: Some(format!(
                    "{why} (fetched again after {REFETCH_AFTER_FAILURE:?})"
                )),
                failure: Some(failure),
            };
        }
        match self.fetch(&domain, &id, allow_private).await {
            Ok(policy) => {
                self.failed.lock().expect("not poisoned").remove(&domain);
                if let Err(err) = store::mta_sts::store(
                    &self.pool,
                    &domain,
                    &policy.id,
                    policy.mode.as_str(),
                    &policy.mx,
                    policy.max_age,
                )
                .await
                {
                    tracing::warn!(%domain, error = %err, "caching the MTA-STS policy");
                }
                // Read back from Postgres next time (after the store, so no delivery keeps
                // the old row for another minute).
                self.cached.forget(&domain);
                Found {
                    policy: Some(Arc::new(policy)),
                    ..Found::default()
                }
            }
            Err((failure, why)) => {
                let why = format!("MTA-STS policy of {domain} (id {id}): {why}");
                self.failed.lock().expect("not poisoned").insert(
                    domain.clone(),
                    (id.clone(), Instant::now(), (failure, why.clone())),
                );
                if cached.is_some() {
                    let _ = store::mta_sts::refresh_failed(&self.pool, &domain, &why).await;
                }
                Found {
                    policy: cached.map(Arc::new),
                    error: Some(why),
                    failure: Some(failure),
                }
            }
        }
    }

    /// The `id` of the domain's one `v=STSv1` TXT record; none when there is none, or more
    /// than one (§3.1: then the domain has no policy).
    async fn txt_id(&self, domain: &str) -> Result<Option<String>, String> {
        let records = self
            .dns
            .txt(&format!("_mta-sts.{domain}"))
            .await
            .map_err(|e| e.to_string())?;
        let ids: Vec<String> = records
            .iter()
            .filter(|r| r.starts_with(b"v=STSv1"))
            .filter_map(|r| MtaSts::parse(r).ok())
            .map(|r| r.id)
            .collect();
        Ok(match ids.as_slice() {
            [id] => Some(id.clone()),
            _ => None,
        })
    }

    /// GET `https://mta-sts.<domain>/.well-known/mta-sts.txt` and parse it.
    async fn fetch(
        &self,
        domain: &str,
        id: &str,
        allow_private: bool,
    ) -> Result<StsPolicy, (Failure, String)> {
        use Failure::{StsPolicyFetchError as Fetch, StsPolicyInvalid as Invalid};
        let fetch_error = |why: String| (Fetch, why);
        let host = format!("mta-sts.{domain}");
        let addrs = self
            .dns
            .addresses(&host)
            .await
            .map_err(|e| (Fetch, e.to_string()))?;
        if addrs.is_empty() {
            return Err((Fetch, format!("{host} has no address")));
        }
        let usable: Vec<SocketAddr> = addrs
            .iter()
            .filter(|ip| allow_private || !is_private(**ip))
            .map(|ip| SocketAddr::new(*ip, 443))
            .collect();
        if usable.is_empty() {
            return Err((
                Fetch,
                format!(
                    "{host} resolves only to private addresses ({})",
                    addrs
                        .iter()
                        .map(IpAddr::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| (Fetch, e.to_string()))?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        // The name resolves through `[dns]` (above), not the system's resolver.
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .resolve_to_addrs(&host, &usable)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(concat!("mailgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| (Fetch, e.to_string()))?;
        let url = format!("https://{host}/.well-known/mta-sts.txt");
        // A certificate that does not verify is `sts-webpki-invalid` (RFC 8460 §4.3.1).
        let describe = |e: reqwest::Error| match crate::tls::explain(&e) {
            Some(tls) => (Failure::StsWebpkiInvalid, format!("GET {url}: TLS: {tls}")),
            None => (Fetch, format!("GET {url}: {e}")),
        };
        let mut response = client.get(&url).send().await.map_err(describe)?;
        let status = response.status();
        if status.as_u16() != 200 {
            return Err(fetch_error(format!(
                "GET {url} answered {status} (200 required, redirects are not followed)"
            )));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !content_type.starts_with("text/plain") {
            return Err((
                Invalid,
                format!("GET {url}: content type {content_type:?}, not text/plain"),
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_POLICY_BYTES {
                return Err((
                    Invalid,
                    format!("GET {url}: the policy is over {MAX_POLICY_BYTES} bytes"),
                ));
            }
        }
        let body =
            String::from_utf8(body).map_err(|_| (Invalid, format!("GET {url}: not UTF-8")))?;
        StsPolicy::parse(id, &body).map_err(|why| (Invalid, format!("{url}: {why}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_body_parses() {
        let p = StsPolicy::parse(
            "20240101",
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET.\r\nmax_age: 604800\r\nextension: ignored\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.mx, ["mail.example.com", "*.example.net"]);
        assert_eq!(p.max_age, 604800);
        assert!(p.matches("mail.example.com"));
        assert!(p.matches("MX1.example.net."));
        assert!(!p.matches("example.net"), "a wildcard needs one label");
        assert!(!p.matches("a.b.example.net"), "and only one");
        assert!(!p.matches("evil.example.com"));
    }

    #[test]
    fn a_bad_policy_says_why() {
        for (body, why) in [
            ("mode: enforce\nmx: a\nmax_age: 1", "version"),
            ("version: STSv1\nmode: strict\nmx: a\nmax_age: 1", "mode"),
            ("version: STSv1\nmode: enforce\nmax_age: 1", "mx"),
            (
                "version: STSv1\nmode: enforce\nmx: a\nmax_age: -1",
                "max_age",
            ),
            ("version: STSv1\nmode: enforce\nmx: a", "max_age"),
            ("<html>", "key: value"),
        ] {
            let err = StsPolicy::parse("1", body).unwrap_err();
            assert!(err.contains(why), "{body:?}: {err}");
        }
        let none = StsPolicy::parse("1", "version: STSv1\nmode: none\nmax_age: 86400").unwrap();
        assert_eq!(none.mode, Mode::None);
    }
}
