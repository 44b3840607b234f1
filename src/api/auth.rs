//! Who is calling, as route extractors: a project's API key (`Authorization: Bearer mg_…`),
//! the operator (a JWT), or either ([`Caller`]). The gate layer has usually authenticated
//! the request already; the extractors then take its answer from the request's extensions.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, request::Parts},
};

use super::{AppState, error::ServiceError};
use crate::{
    domain::Scope,
    service::{Caller, error::AuthFailure, gate},
    store::api_keys::AuthenticatedKey,
};

/// The bearer token of the `Authorization` header.
pub(super) fn bearer(headers: &HeaderMap) -> Result<&str, ServiceError> {
    let value =
        headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(ServiceError::Unauthorized(AuthFailure::Missing {
                expected: "Authorization: Bearer <api key>",
            }))?;
    let value = value
        .to_str()
        .map_err(|_| ServiceError::Unauthorized(AuthFailure::MalformedHeader))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(ServiceError::Unauthorized(AuthFailure::NotBearer))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ServiceError::Unauthorized(AuthFailure::NotBearer));
    }
    Ok(token.trim())
}

/// A request authenticated by a project's API key.
pub struct ProjectKey(pub AuthenticatedKey);

impl ProjectKey {
    pub fn require(&self, scope: Scope) -> Result<&AuthenticatedKey, ServiceError> {
        gate::require(&self.0, scope)
    }
}

impl FromRequestParts<AppState> for ProjectKey {
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(Caller::Key(key)) = parts.extensions.get::<Caller>() {
            return Ok(ProjectKey(key.clone()));
        }
        let token = bearer(&parts.headers)?;
        Ok(ProjectKey(state.gate.key(token).await?))
    }
}

/// The operator or a project key: key management and held mail accept either.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let token = bearer(&parts.headers)?;
        state.gate.caller(token).await
    }
}

/// Only the operator (projects of every tenant).
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(Caller::Operator) = parts.extensions.get::<Caller>() {
            return Ok(Operator);
        }
        let token = bearer(&parts.headers)?;
        state.gate.operator(token)?;
        Ok(Operator)
    }
}
