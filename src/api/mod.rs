//! The HTTP surface: one file per resource, merged here.

pub mod access;
pub mod api_keys;
pub mod auth;
pub mod compat;
pub mod destinations;
pub mod domains;
pub mod email_request;
pub mod emails;
pub mod error;
pub mod extract;
pub mod gate;
pub mod headers;
pub mod health;
pub mod hold;
pub mod idempotency;
pub mod inbound;
pub mod metrics;
pub mod openapi;
pub mod projects;
pub mod relays;
pub mod suppressions;
pub mod templates;
pub mod tracking;
pub mod unsubscribe;
pub mod webhooks;

use axum::{Router, extract::DefaultBodyLimit, middleware};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

/// The process's shared state, which the handlers take (it lives with the wiring, in `app`).
pub use crate::service::AppState;

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.http.max_body_bytes;
    // Every authenticated resource goes in `v1`, behind the rate-limit layer.
    let v1 = Router::new()
        .merge(emails::router())
        .merge(hold::router())
        .merge(projects::router())
        .merge(inbound::router())
        .merge(relays::router())
        .merge(destinations::router())
        .merge(api_keys::router())
        .merge(templates::router())
        .merge(webhooks::router())
        .merge(suppressions::router())
        .merge(domains::router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            gate::layer::<gate::Native>,
        ));
    Router::new()
        .merge(v1)
        // Provider-compatible routes (Resend, Postmark…), each behind its own auth layer.
        .merge(compat::router(state.clone()))
        .merge(health::router())
        .merge(tracking::router())
        .merge(unsubscribe::router())
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", {
                use utoipa::OpenApi;
                openapi::ApiDoc::openapi()
            }),
        )
        .fallback(|| async { error::ServiceError::NotFound("route") })
        .method_not_allowed_fallback(|| async {
            let problem = serde_json::json!({
                "type": "urn:mailgate:problem:method_not_allowed",
                "title": "Method Not Allowed",
                "status": 405,
                "detail": "this route does not take that method",
                "code": "method_not_allowed",
            });
            error::json_response(axum::http::StatusCode::METHOD_NOT_ALLOWED, &problem)
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(crate::telemetry::request_span)
                .on_failure(log_failure),
        )
        // Outermost: every request gets an `x-request-id` (a client's own is kept), echoed on
        // the response and recorded in the request span, so a reply can be found in the logs.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Server errors are logged as errors, except `503`: mailgate answers it on purpose (a
/// draining process's `/readyz`, a scanner or Redis that fails closed), each time it is asked.
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass::StatusCode;
    let ms = latency.as_millis() as u64;
    match class {
        StatusCode(code) if code == axum::http::StatusCode::SERVICE_UNAVAILABLE => {
            tracing::debug!(latency_ms = ms, "answered 503")
        }
        class => tracing::error!(classification = %class, latency_ms = ms, "response failed"),
    }
}
