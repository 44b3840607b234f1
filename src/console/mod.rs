//! The web console at `/console`: pages rendered on the server (tera, templates embedded in
//! the binary) over the same store functions and authorization code as the API. A session
//! cookie stands for the API key or operator token someone signed in with (`session`); every
//! form that changes something carries the session's CSRF token.
//!
//! It is a transport like `api`, beside it on the same listener: `app` merges the two
//! routers, and nothing below uses this module.

mod assets;
mod chart;
mod domains;
mod error;
mod keys;
mod messages;
mod mime_view;
mod operator;
mod overview;
mod session;
mod suppressions;
mod templates;
mod view;
mod webhooks;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, HeaderValue, header},
    middleware::{self, Next},
    response::{Redirect, Response},
    routing::{any, get, post},
};
use tower_http::trace::TraceLayer;

use crate::service::AppState;

pub use error::ConsoleError;

/// Largest form the console takes (a template's three parts fit many times over).
const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        // With or without the slash people type.
        .route(
            "/console",
            get(|| async { Redirect::to("/console/overview") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/overview") }),
        )
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/overview", get(overview::page))
        .route("/console/messages", get(messages::list))
        .route("/console/messages/{id}", get(messages::show))
        .route("/console/messages/{id}/html", get(messages::html_part))
        .route("/console/messages/{id}/cancel", post(messages::cancel))
        .route("/console/messages/{id}/release", post(messages::release))
        .route("/console/messages/{id}/discard", post(messages::discard))
        .route(
            "/console/suppressions",
            get(suppressions::list).post(suppressions::add),
        )
        .route("/console/suppressions/remove", post(suppressions::remove))
        .route(
            "/console/templates",
            get(templates::list).post(templates::save),
        )
        .route("/console/templates/new", get(templates::new))
        .route("/console/templates/preview", post(templates::preview))
        .route("/console/templates/{name}", get(templates::show))
        .route("/console/templates/{name}/delete", post(templates::delete))
        .route(
            "/console/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route("/console/webhooks/{id}", get(webhooks::show))
        .route(
            "/console/webhooks/{id}/enabled",
            post(webhooks::set_enabled),
        )
        .route(
            "/console/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route("/console/webhooks/{id}/test", post(webhooks::send_test))
        .route(
            "/console/webhooks/{id}/deliveries/{delivery}/replay",
            post(webhooks::replay_delivery),
        )
        .route("/console/domains", get(domains::list).post(domains::create))
        .route("/console/domains/{id}", get(domains::show))
        .route("/console/domains/{id}/verify", post(domains::verify))
        .route(
            "/console/domains/{id}/rotate-dkim",
            post(domains::rotate_dkim),
        )
        .route("/console/domains/{id}/dmarc", post(domains::set_dmarc))
        .route("/console/domains/{id}/delete", post(domains::delete))
        .route("/console/keys", get(keys::list).post(keys::create))
        .route("/console/keys/{id}/revoke", post(keys::revoke))
        .route("/console/keys/{id}/limits", post(keys::limits))
        .route("/console/projects", get(operator::projects))
        .route("/console/project", post(operator::choose_project))
        .route("/console/queue", get(operator::queue))
        .route("/console/queue/retry", post(operator::retry_deferred))
        .route("/console/destinations", get(operator::destinations))
        .route("/console/assets/{file}", get(assets::serve))
        // Unknown console paths get the console's 404 page, not the API's JSON one.
        .route(
            "/console/{*rest}",
            any(|| async { ConsoleError::NotFound("page") }),
        )
        .layer(middleware::from_fn(security_headers))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(TraceLayer::new_for_http().make_span_with(crate::telemetry::request_span))
        .with_state(state)
}

/// The console's own Content-Security-Policy: no inline script or style, nothing from other
/// origins, never framed by another page. A route that sets its own (the sandboxed HTML
/// preview) keeps it.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults: [(HeaderName, &str); 6] = [
        (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // Pages show mail and keys: no copy stays in a shared cache or the back button.
        (header::CACHE_CONTROL, "no-store"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
