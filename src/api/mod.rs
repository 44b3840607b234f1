//! The HTTP surface: one file per resource, merged here.

pub mod api_keys;
pub mod auth;
pub mod emails;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod openapi;
pub mod projects;
pub mod suppressions;
pub mod webhooks;

use std::sync::Arc;

use axum::{Router, extract::DefaultBodyLimit};
use sqlx::PgPool;
use tower_http::trace::TraceLayer;

use crate::{config::Config, delivery::Relays, queue::wake::Waker};

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub relays: Arc<Relays>,
    pub waker: Waker,
    pub keys: auth::KeyCache,
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.http.max_body_bytes;
    Router::new()
        .merge(emails::router())
        .merge(projects::router())
        .merge(api_keys::router())
        .merge(health::router())
        .merge(webhooks::router())
        .merge(suppressions::router())
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", {
                use utoipa::OpenApi;
                openapi::ApiDoc::openapi()
            }),
        )
        .fallback(|| async { error::ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
