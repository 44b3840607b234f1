//! Who is calling: a project's API key (`Authorization: Bearer mg_…`) or the operator (a JWT).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, request::Parts},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AppState, error::ApiError};
use crate::{
    domain::{ApiKeySecret, Scope},
    store::api_keys::{self, AuthenticatedKey},
};

/// Verified keys by hash, for a few seconds: saves a round trip per request.
/// Revocation therefore takes effect within `http.key_cache_secs`.
#[derive(Clone, Default)]
pub struct KeyCache {
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

    pub fn forget(&self, key_id: Uuid) {
        self.inner
            .lock()
            .expect("not poisoned")
            .retain(|_, (k, _)| k.id != key_id);
    }
}

/// Who the rate-limit layer found calling; put in the request's extensions so the
/// extractors below do not authenticate a second time.
#[derive(Debug, Clone)]
pub enum Caller {
    Key(AuthenticatedKey),
    Operator,
}

pub(super) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer <api key>".into()))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <api key>".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "expected Authorization: Bearer <api key>".into(),
        ));
    }
    Ok(token.trim())
}

/// The active key behind `token`, through the per-process cache; the console signs in with it
/// too.
pub async fn authenticate_key(state: &AppState, token: &str) -> Result<AuthenticatedKey, ApiError> {
    let secret = ApiKeySecret::parse(token)
        .ok_or_else(|| ApiError::Unauthorized("invalid API key".into()))?;
    let hash = secret.hash();
    let ttl = Duration::from_secs(state.config.http.key_cache_secs);
    if let Some(key) = state.keys.get(&hash, ttl) {
        return Ok(key);
    }
    let key = api_keys::find_active(&state.pool, &secret)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("invalid or revoked API key".into()))?;
    state.keys.put(hash, key.clone());
    Ok(key)
}

/// A request authenticated by a project's API key.
pub struct ProjectKey(pub AuthenticatedKey);

impl ProjectKey {
    pub fn require(&self, scope: Scope) -> Result<&AuthenticatedKey, ApiError> {
        if self.0.scopes.contains(&scope) {
            Ok(&self.0)
        } else {
            Err(ApiError::ForbiddenScope(scope.as_str()))
        }
    }
}

impl FromRequestParts<AppState> for ProjectKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(Caller::Key(key)) = parts.extensions.get::<Caller>() {
            return Ok(ProjectKey(key.clone()));
        }
        let token = bearer(&parts.headers)?;
        Ok(ProjectKey(authenticate_key(state, token).await?))
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

/// The claims of a valid operator token (the console caps its session at their `exp`).
pub fn verify_operator(state: &AppState, token: &str) -> Result<OperatorClaims, ApiError> {
    let secret = state.config.jwt_secret.as_ref().ok_or_else(|| {
        ApiError::Unauthorized("operator access is disabled: MAILGATE_JWT_SECRET is not set".into())
    })?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.sub = Some(OPERATOR_SUBJECT.into());
    let data = jsonwebtoken::decode::<OperatorClaims>(
        token,
        &DecodingKey::from_secret(secret.expose_secret().as_bytes()),
        &validation,
    )
    .map_err(|e| ApiError::Unauthorized(format!("invalid operator token: {e}")))?;
    Ok(data.claims)
}

/// The operator or a project key: key management accepts either.
pub enum Principal {
    Operator,
    Key(AuthenticatedKey),
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::Key(key)) => return Ok(Principal::Key(key.clone())),
            Some(Caller::Operator) => return Ok(Principal::Operator),
            None => {}
        }
        let token = bearer(&parts.headers)?;
        if token.starts_with("mg_") {
            Ok(Principal::Key(authenticate_key(state, token).await?))
        } else {
            verify_operator(state, token)?;
            Ok(Principal::Operator)
        }
    }
}

/// Only the operator (projects of every tenant).
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(Caller::Operator) = parts.extensions.get::<Caller>() {
            return Ok(Operator);
        }
        let token = bearer(&parts.headers)?;
        verify_operator(state, token)?;
        Ok(Operator)
    }
}
