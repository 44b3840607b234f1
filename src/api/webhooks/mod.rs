//! `/v1/webhooks`: a project's endpoints (the secret is shown once, at creation or
//! rotation), test events, and the delivery log with replay.
//!
//! - `endpoints`: create, list, read, change, delete an endpoint; rotate its secret.
//! - `deliveries`: test events, the delivery log, and replaying a delivery.

mod deliveries;
mod endpoints;

use axum::{
    Router,
    routing::{get, post},
};
use uuid::Uuid;

pub use deliveries::*;
pub use endpoints::*;

use super::{
    AppState,
    error::{ApiError, ApiResult},
};
use crate::store::webhooks::{self as store, EndpointRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", post(create).get(list))
        .route("/v1/webhooks/signing-key", get(signing_key))
        .route("/v1/webhooks/{id}", get(show).patch(update).delete(remove))
        .route("/v1/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/v1/webhooks/{id}/test", post(send_test))
        .route("/v1/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
            post(retry),
        )
}

pub fn parse_id(raw: &str) -> ApiResult<Uuid> {
    // An id that cannot exist is simply not found, like another project's.
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("webhook"))
}

/// The project's endpoint with this id (another project's reads as absent).
pub async fn endpoint(state: &AppState, project_id: Uuid, raw_id: &str) -> ApiResult<EndpointRow> {
    store::find(&state.pool, project_id, parse_id(raw_id)?)
        .await?
        .ok_or(ApiError::NotFound("webhook"))
}
