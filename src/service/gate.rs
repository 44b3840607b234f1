//! The one gate every way in passes: who is calling (a project's API key or the operator's
//! JWT), the failed-authentication throttle per client address, and the rate-limit charge.
//! Transports only say where their credentials are (a bearer header, a provider's own
//! header, SMTP AUTH, a console form) and how a refusal reads in their protocol.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    client_addr::TrustedProxies,
    error::{AuthFailure, ServiceError, ServiceResult},
};
use crate::{
    domain::{ApiKeySecret, Scope, api_key::KeyLimits},
    ratelimit::{AuthThrottle, Class, Decision, Limiter},
    store::api_keys::{self, AuthenticatedKey},
};

/// Who is calling: a project's key, or the operator (every project).
#[derive(Debug, Clone)]
pub enum Caller {
    Key(AuthenticatedKey),
    Operator,
}

impl Caller {
    /// The key's project when it holds `scope`; the operator has no project of its own
    /// (`None`) and every scope.
    pub fn project_with(&self, scope: Scope) -> ServiceResult<Option<Uuid>> {
        match self {
            Caller::Key(key) => Ok(Some(require(key, scope)?.project_id)),
            Caller::Operator => Ok(None),
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        match self {
            Caller::Key(key) => key.scopes.contains(&scope),
            Caller::Operator => true,
        }
    }
}

/// The key, when it holds `scope`.
pub fn require(key: &AuthenticatedKey, scope: Scope) -> ServiceResult<&AuthenticatedKey> {
    if key.scopes.contains(&scope) {
        Ok(key)
    } else {
        Err(ServiceError::ForbiddenScope(scope))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OperatorClaims {
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
}

const OPERATOR_SUBJECT: &str = "mailgate-operator";

/// Mints an operator token valid for `ttl` (the `mailgate token` command).
pub fn mint_operator_token(secret: &SecretString, ttl: Duration) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = OperatorClaims {
        sub: OPERATOR_SUBJECT.into(),
        iat: now,
        exp: now + ttl.as_secs() as i64,
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )?)
}

/// Authentication, throttling and charging, shared by every transport. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    pool: PgPool,
    keys: KeyCache,
    key_ttl: Duration,
    limiter: Limiter,
    throttle: AuthThrottle,
    jwt_secret: Option<SecretString>,
    proxies: TrustedProxies,
}

impl Gate {
    pub fn new(
        pool: PgPool,
        limiter: Limiter,
        throttle: AuthThrottle,
        key_cache_secs: u64,
        jwt_secret: Option<SecretString>,
    ) -> Self {
        Gate {
            pool,
            keys: KeyCache::default(),
            key_ttl: Duration::from_secs(key_cache_secs),
            limiter,
            throttle,
            jwt_secret,
            proxies: TrustedProxies::default(),
        }
    }

    /// Believes these proxies' `X-Forwarded-For` (`http.trusted_proxies`).
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// The client behind an HTTP request from `peer` with these headers: what the
    /// failed-authentication throttle counts against (see `client_addr`).
    pub fn client_addr(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        let forwarded_for = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        self.proxies.client(peer, forwarded_for)
    }

    /// The limiter, for its status (readiness, the start-up line).
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Refuses an address while it has too many failed authentications.
    pub fn admit(&self, ip: Option<IpAddr>) -> ServiceResult<()> {
        if let Some(ip) = ip
            && let Err(wait) = self.throttle.check(ip)
        {
            return Err(ServiceError::AuthThrottled(wait));
        }
        Ok(())
    }

    /// Counts a failed authentication against an address.
    pub fn failed(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            self.throttle.failed(ip);
        }
    }

    /// The active key behind `token`, through the per-process cache (revocation takes effect
    /// within `http.key_cache_secs`).
    pub async fn key(&self, token: &str) -> ServiceResult<AuthenticatedKey> {
        let secret = ApiKeySecret::parse(token)
            .ok_or(ServiceError::Unauthorized(AuthFailure::InvalidKey))?;
        let hash = secret.hash();
        if let Some(key) = self.keys.get(&hash, self.key_ttl) {
            return Ok(key);
        }
        let key = api_keys::find_active(&self.pool, &secret)
            .await?
            .ok_or(ServiceError::Unauthorized(AuthFailure::UnknownKey))?;
        self.keys.put(hash, key.clone());
        Ok(key)
    }

    /// The claims of a valid operator token (the console caps its session at their `exp`).
    pub fn operator(&self, token: &str) -> ServiceResult<OperatorClaims> {
        let secret = self
            .jwt_secret
            .as_ref()
            .ok_or(ServiceError::Unauthorized(AuthFailure::OperatorDisabled))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.sub = Some(OPERATOR_SUBJECT.into());
        let data = jsonwebtoken::decode::<OperatorClaims>(
            token,
            &DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            &validation,
        )
        .map_err(|e| {
            ServiceError::Unauthorized(AuthFailure::InvalidOperatorToken(e.to_string()))
        })?;
        Ok(data.claims)
    }

    /// A fingerprint of the operator secret: an HMAC keyed by it, so that what is stored
    /// (with each operator console session) reveals nothing of it. A session whose
    /// fingerprint is not the current one was signed in under another secret, and is over.
    pub fn operator_fingerprint(&self) -> Option<Vec<u8>> {
        use hmac::{Hmac, Mac};
        let secret = self.jwt_secret.as_ref()?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"mailgate console operator session");
        Some(mac.finalize().into_bytes().to_vec())
    }

    /// A key (`mg_…`) or the operator's token.
    pub async fn caller(&self, token: &str) -> ServiceResult<Caller> {
        if token.starts_with("mg_") {
            Ok(Caller::Key(self.key(token).await?))
        } else {
            self.operator(token).map(|_| Caller::Operator)
        }
    }

    /// Forgets a key at once in this process (revoked or changed).
    pub fn forget(&self, key_id: Uuid) {
        self.keys.forget(key_id);
    }

    /// Charges `units` of `class` to the caller: a key's own buckets; the operator has no
    /// send bucket and its calls count in one shared `api` bucket.
    pub async fn charge(
        &self,
        caller: &Caller,
        class: Class,
        units: u32,
    ) -> ServiceResult<Option<Decision>> {
        match caller {
            Caller::Key(key) => self.charge_as(key.id, &key.limits, class, units).await,
            Caller::Operator => {
                self.charge_as(Uuid::nil(), &KeyLimits::default(), Class::Api, units)
                    .await
            }
        }
    }

    /// Charges `units` to any subject with its limits (SMTP mail from a trusted network
    /// counts against its project).
    pub async fn charge_as(
        &self,
        subject: Uuid,
        limits: &KeyLimits,
        class: Class,
        units: u32,
    ) -> ServiceResult<Option<Decision>> {
        Ok(self.limiter.check(subject, limits, class, units).await?)
    }

    /// Charges one unit to a client that is nobody's (a request no key answers for, such as
    /// Postmark's test token): `per_minute` per client (an IPv4 address or an IPv6 /64) and
    /// `what`, in a burst too, shared through Redis. Its buckets are sized by the caller, as
    /// tracking's are, so they go with that class.
    pub async fn charge_client(
        &self,
        what: &str,
        ip: IpAddr,
        per_minute: u32,
    ) -> ServiceResult<Option<Decision>> {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"mailgate anonymous ");
        hash.update(what.as_bytes());
        hash.update([0]);
        match crate::ratelimit::client_prefix(ip) {
            IpAddr::V4(v4) => hash.update(v4.octets()),
            IpAddr::V6(v6) => hash.update(v6.octets()),
        }
        let mut subject = [0u8; 16];
        subject.copy_from_slice(&hash.finalize()[..16]);
        let limits = KeyLimits {
            rate_per_sec: Some(f64::from(per_minute) / 60.0),
            burst: Some(per_minute),
            daily_quota: None,
        };
        self.charge_as(Uuid::from_bytes(subject), &limits, Class::Tracking, 1)
            .await
    }
}

/// Verified keys by hash, for a few seconds: saves a round trip per request.
#[derive(Clone, Default)]
struct KeyCache {
    inner: Arc<Mutex<HashMap<KeyHash, (AuthenticatedKey, Instant)>>>,
}

type KeyHash = Vec<u8>;

impl KeyCache {
    fn get(&self, hash: &[u8], ttl: Duration) -> Option<AuthenticatedKey> {
        let map = self.inner.lock().expect("not poisoned");
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|(key, _)| key.clone())
    }

    fn put(&self, hash: Vec<u8>, key: AuthenticatedKey) {
        let mut map = self.inner.lock().expect("not poisoned");
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(hash, (key, Instant::now()));
    }

    fn forget(&self, key_id: Uuid) {
        self.inner
            .lock()
            .expect("not poisoned")
            .retain(|_, (k, _)| k.id != key_id);
    }
}
