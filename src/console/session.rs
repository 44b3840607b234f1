//! Signing in and out, and who a console request comes from.
//!
//! Signing in takes an API key (the pages of its project, limited to its scopes) or an
//! operator JWT (every project), checked by the application's own gate (`service::Gate`), behind the same failed-authentication throttle. It creates a session
//! row and sets a random token in an `HttpOnly`, `SameSite=Strict` cookie; the key or token
//! itself is never kept. Each session has a CSRF token that every state-changing form sends
//! back (`Viewer::check_csrf`). The sign-in form, before any session, uses a cookie of its
//! own as its CSRF token (double submit). An operator session keeps the fingerprint of the
//! JWT secret it signed in under (`Gate::operator_fingerprint`) and ends when the secret
//! changes. Failed sign-ins count against the client's address, behind the trusted proxies
//! (`Gate::client_addr`).

use std::net::SocketAddr;

use axum::{
    Extension, Form,
    extract::{ConnectInfo, FromRequestParts, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use base64::Engine;
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tera::Context;
use uuid::Uuid;

use super::{
    error::{ConsoleError, ConsoleResult},
    view,
};
use crate::{
    domain::Scope,
    service::{AppState, Caller, error::ServiceError},
    store::{
        api_keys,
        console_sessions::{self, SignedIn},
        projects::{self, Project},
    },
};

pub const SESSION_COOKIE: &str = "mg_console";
const SIGN_IN_COOKIE: &str = "mg_console_sign_in";
const HOME: &str = "/console/overview";

/// The signed-in person behind a console request.
pub struct Viewer {
    pub session_id: Uuid,
    pub csrf: String,
    pub who: Caller,
    /// What the pages show: the key's project, or the one the operator chose.
    pub project: Option<Project>,
}

impl Viewer {
    /// The project a page needing `scope` shows. A key must have the scope; the operator may see any project, once one is chosen.
    pub fn project_for(&self, scope: Scope) -> ConsoleResult<uuid::Uuid> {
        match self.who.project_with(scope)? {
            Some(project) => Ok(project),
            None => self
                .project
                .as_ref()
                .map(|p| p.id)
                .ok_or(ConsoleError::ChooseProject),
        }
    }

    /// Whether pages needing `scope` are open to this viewer (for the navigation).
    pub fn may(&self, scope: Scope) -> bool {
        self.who.has(scope)
    }

    pub fn is_operator(&self) -> bool {
        matches!(self.who, Caller::Operator)
    }

    /// A form that changes something in the project under `scope`: its CSRF token must be
    /// this session's, and the viewer must hold the scope. The project it acts on.
    pub fn may_change(&self, csrf: &str, scope: Scope) -> ConsoleResult<uuid::Uuid> {
        self.check_csrf(csrf)?;
        self.project_for(scope)
    }

    /// A state-changing form must send back this session's token.
    pub fn check_csrf(&self, sent: &str) -> ConsoleResult<()> {
        if same_secret(sent, &self.csrf) {
            Ok(())
        } else {
            Err(ConsoleError::Csrf)
        }
    }
}

impl view::Audience for Viewer {
    fn csrf(&self) -> &str {
        &self.csrf
    }

    fn may(&self, scope: Scope) -> bool {
        Viewer::may(self, scope)
    }

    fn is_operator(&self) -> bool {
        Viewer::is_operator(self)
    }

    fn project_name(&self) -> Option<&str> {
        self.project.as_ref().map(|p| p.name.as_str())
    }

    fn signed_in_as(&self) -> &'static str {
        match &self.who {
            Caller::Key(key) if key.test_mode => "test key",
            Caller::Key(_) => "API key",
            Caller::Operator => "operator",
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ConsoleResult<Self> {
        // After signing in, a page comes back to where it was; a form post goes home.
        let next = if parts.method == axum::http::Method::GET {
            parts
                .uri
                .path_and_query()
                .map_or(HOME.to_string(), |p| p.as_str().to_string())
        } else {
            HOME.to_string()
        };
        let sign_in = || ConsoleError::SignIn { next: next.clone() };
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(sign_in)?;
        let session = console_sessions::find_live(&state.pool, &hash(token))
            .await?
            .ok_or_else(sign_in)?;
        let who = match session.api_key_id {
            Some(id) => Caller::Key(
                api_keys::find_active_by_id(&state.pool, id)
                    .await?
                    .ok_or_else(sign_in)?,
            ),
            // Operator access switched off since, or the secret changed: the session was
            // signed in under a secret that no longer holds, and ends with it.
            None => match (state.gate.operator_fingerprint(), &session.operator_secret) {
                (Some(current), Some(signed_in_under)) if current == *signed_in_under => {
                    Caller::Operator
                }
                _ => return Err(sign_in()),
            },
        };
        let project_id = match &who {
            Caller::Key(key) => Some(key.project_id),
            Caller::Operator => session.project_id,
        };
        let project = match project_id {
            Some(id) => projects::find(&state.pool, id).await?,
            None => None,
        };
        Ok(Viewer {
            session_id: session.id,
            csrf: session.csrf_token,
            who,
            project,
        })
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Response {
    sign_in_form(&state, &headers, StatusCode::OK, q.next.as_deref(), None)
}

/// The form, with a fresh sign-in token in a cookie and in a hidden field.
fn sign_in_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: Option<&str>,
    error: Option<&str>,
) -> Response {
    let csrf = random_token();
    let mut context = Context::new();
    context.insert("csrf", &csrf);
    context.insert("next", &safe_next(next));
    context.insert("error", &error);
    context.insert("operator_enabled", &state.config.jwt_secret.is_some());
    let mut response = view::page(None, "sign_in.html", "Sign in", context);
    *response.status_mut() = status;
    let cookie = cookie_header(
        state,
        headers,
        SIGN_IN_COOKIE,
        &csrf,
        "/console/sign-in",
        3600,
    );
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn sign_in(
    State(state): State<AppState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> ConsoleResult<Response> {
    let ip =
        connect.map(|Extension(ConnectInfo(addr))| state.gate.client_addr(addr.ip(), &headers));
    let next = form.next.as_deref();
    if let Err(throttled) = state.gate.admit(ip) {
        let message = throttled.to_string();
        return Ok(sign_in_form(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            Some(&message),
        ));
    }
    match cookie(&headers, SIGN_IN_COOKIE) {
        Some(expected) if same_secret(&form.csrf, expected) => {}
        _ => return Err(ConsoleError::Csrf),
    }
    let token = form.token.trim();
    let signed_in = if token.starts_with("mg_") {
        state
            .gate
            .key(token)
            .await
            .map(|key| (SignedIn::Key(key.id), None))
    } else {
        state.gate.operator(token).map(|claims| {
            let secret = state
                .gate
                .operator_fingerprint()
                .expect("a token was checked, so there is a secret");
            (SignedIn::Operator { secret }, Some(claims.exp))
        })
    };
    let (who, token_expiry) = match signed_in {
        Ok(found) => found,
        Err(ServiceError::Unauthorized(_)) => {
            state.gate.failed(ip);
            let message = if token.is_empty() {
                "Paste an API key or an operator token."
            } else {
                "That key or token is not valid (or was revoked)."
            };
            return Ok(sign_in_form(
                &state,
                &headers,
                StatusCode::UNAUTHORIZED,
                next,
                Some(message),
            ));
        }
        Err(other) => return Err(other.into()),
    };
    let lifetime = state.config.console.session_secs;
    let mut expires_at = chrono::Utc::now() + chrono::Duration::seconds(lifetime as i64);
    // An operator session ends with its token.
    if let Some(exp) = token_expiry.and_then(|t| chrono::DateTime::from_timestamp(t, 0)) {
        expires_at = expires_at.min(exp);
    }
    let session_token = random_token();
    console_sessions::create(
        &state.pool,
        &hash(&session_token),
        &random_token(),
        who,
        expires_at,
    )
    .await?;
    let max_age = (expires_at - chrono::Utc::now()).num_seconds().max(0) as u64;
    let mut response = Redirect::to(&safe_next(next)).into_response();
    let set = response.headers_mut();
    set.append(
        header::SET_COOKIE,
        cookie_header(
            &state,
            &headers,
            SESSION_COOKIE,
            &session_token,
            "/console",
            max_age,
        ),
    );
    set.append(
        header::SET_COOKIE,
        cookie_header(&state, &headers, SIGN_IN_COOKIE, "", "/console/sign-in", 0),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    console_sessions::revoke(&state.pool, viewer.session_id).await?;
    let mut response = Redirect::to("/console/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(&state, &headers, SESSION_COOKIE, "", "/console", 0),
    );
    Ok(response)
}

/// Where to go after signing in: a console path only, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console/") && !n.contains("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => HOME.to_string(),
    }
}

/// `Secure` whenever the listener is not on loopback: reachable from other machines, the
/// console must be served over HTTPS (a TLS-terminating proxy in front), and a cookie that a
/// plain-HTTP request would carry could be read on the wire. On loopback (a browser on the
/// same host, or a proxy on it), `Secure` when configured or when the proxy says the browser
/// used HTTPS.
fn cookie_header(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) -> HeaderValue {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let exposed = !state.config.http_addr.ip().is_loopback();
    let secure = if state.config.console.secure_cookies || https || exposed {
        "; Secure"
    } else {
        ""
    };
    // Names, paths and values are base64url or fixed text: always a valid header.
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie text is header-safe")
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
}

/// 32 random bytes, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(
            safe_next(Some("/console/messages?status=queued")),
            "/console/messages?status=queued"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/console//evil",
            "/docs/",
            "/console/\\evil",
        ] {
            assert_eq!(safe_next(Some(bad)), HOME, "{bad}");
        }
        assert_eq!(safe_next(None), HOME);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", ""));
    }
}
