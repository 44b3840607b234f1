//! The HTTP surface: one file per resource, merged here.

pub mod api_keys;
pub mod auth;
pub mod emails;
pub mod error;
pub mod extract;
pub mod health;
pub mod limits;
pub mod projects;

use std::sync::Arc;

use axum::{Router, extract::DefaultBodyLimit, middleware};
use sqlx::PgPool;
use tower_http::trace::TraceLayer;

use crate::{
    config::Config,
    delivery::Relays,
    queue::wake::Waker,
    ratelimit::{AuthThrottle, Limiter},
};

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub relays: Arc<Relays>,
    pub waker: Waker,
    pub keys: auth::KeyCache,
    pub limiter: Limiter,
    pub auth_throttle: AuthThrottle,
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.http.max_body_bytes;
    // Every authenticated resource goes in `v1`, behind the rate-limit layer.
    let v1 = Router::new()
        .merge(emails::router())
        .merge(projects::router())
        .merge(api_keys::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), limits::layer));
    Router::new()
        .merge(v1)
        .merge(health::router())
        .fallback(|| async { error::ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
