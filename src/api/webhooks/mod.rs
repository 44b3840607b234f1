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

pub use deliveries::*;
pub use endpoints::*;

use super::AppState;

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
