//! `/u/{token}`: the one-click unsubscribe link (RFC 8058) of mail sent with `unsubscribe`.
//! No key: the signed token is the credential, and it names one address of one project.
//!
//! - `POST` with the body `List-Unsubscribe=One-Click` (what mailbox providers send, and what
//!   the confirmation page's button sends) suppresses the address (`service::unsubscribe`).
//! - `GET` only shows a page with that button: mail scanners and link previews fetch links,
//!   and must never unsubscribe anyone. The page shows nothing of the recipient.
//!
//! A token this server did not sign, or one edited by a character, is a 404.

use std::net::SocketAddr;

use axum::{
    Router,
    body::Bytes,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::{AppState, error::ServiceError};
use crate::service::{error::FieldError, unsubscribe};

pub fn router() -> Router<AppState> {
    Router::new().route("/u/{token}", get(page).post(one_click))
}

/// The one value RFC 8058 §3.1 puts in the POST body.
const ONE_CLICK: (&str, &str) = ("List-Unsubscribe", "One-Click");

const CONFIRM: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>Unsubscribe</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:4em auto;padding:0 1em">
<h1>Unsubscribe</h1>
<p>Stop receiving mail like this at your address from this sender?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form>
</body></html>
"#;

const DONE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>Unsubscribed</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:4em auto;padding:0 1em">
<h1>You are unsubscribed</h1>
<p>This sender will not mail your address again.</p>
</body></html>
"#;

/// The confirmation page of an unsubscribe link; it changes nothing.
#[utoipa::path(get, path = "/u/{token}", operation_id = "unsubscribe_page", tag = "unsubscribe",
    params(("token" = String, Path, description = "The signed token of the message's `List-Unsubscribe` link")),
    responses(
        (status = 200, description = "A page with an Unsubscribe button (a POST of `List-Unsubscribe=One-Click` to the same URL). Nothing is changed: mail scanners fetch links", content_type = "text/html"),
        (status = 404, description = "Not a token of this server (`not_found`)", body = super::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ServiceError> {
    unsubscribe::verify(&state, &token)?;
    Ok(html(CONFIRM))
}

/// One-click unsubscribe: suppresses the link's recipient in its project.
#[utoipa::path(post, path = "/u/{token}", operation_id = "unsubscribe_one_click", tag = "unsubscribe",
    params(("token" = String, Path, description = "The signed token of the message's `List-Unsubscribe` link")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`List-Unsubscribe=One-Click` (RFC 8058); `multipart/form-data` with that field is taken too"),
    responses(
        (status = 200, description = "Unsubscribed: the address is suppressed in the project with reason `unsubscribe` and `email.unsubscribed` is sent (only the first time; an address already suppressed stays as it is)", content_type = "text/html"),
        (status = 404, description = "Not a token of this server (`not_found`)", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body is not `List-Unsubscribe=One-Click` (`validation_failed`)", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Beyond `tracking.per_ip_per_minute` or `per_token_per_minute` (`rate_limited`)", body = super::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn one_click(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ServiceError> {
    // The token first: a forged link is a 404 whatever its body.
    unsubscribe::verify(&state, &token)?;
    if !is_one_click(&headers, &body) {
        return Err(ServiceError::Validation(vec![FieldError::new(
            "List-Unsubscribe",
            "the body must be List-Unsubscribe=One-Click (RFC 8058)",
        )]));
    }
    let ip = state.gate.client_addr(peer.ip(), &headers);
    unsubscribe::unsubscribe(&state, &token, ip).await?;
    Ok(html(DONE))
}

/// Whether the body carries `List-Unsubscribe=One-Click`, form-encoded or as a multipart
/// field (RFC 8058 allows both).
fn is_one_click(headers: &HeaderMap, body: &[u8]) -> bool {
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
    if multipart {
        let text = String::from_utf8_lossy(body);
        return text.contains("name=\"List-Unsubscribe\"")
            && text.lines().any(|l| l.trim() == ONE_CLICK.1);
    }
    url::form_urlencoded::parse(body).any(|(k, v)| k == ONE_CLICK.0 && v == ONE_CLICK.1)
}

fn html(page: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, max-age=0"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; form-action 'self'"),
            ),
        ],
        page,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_rfc_8058_body_unsubscribes() {
        let none = HeaderMap::new();
        assert!(is_one_click(&none, b"List-Unsubscribe=One-Click"));
        assert!(is_one_click(&none, b"a=b&List-Unsubscribe=One-Click"));
        assert!(!is_one_click(&none, b""));
        assert!(!is_one_click(&none, b"List-Unsubscribe=one-click-ish"));
        let mut multipart = HeaderMap::new();
        multipart.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=x"),
        );
        assert!(is_one_click(
            &multipart,
            b"--x\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--x--\r\n"
        ));
    }
}
