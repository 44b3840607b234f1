//! `GET /v1/relays` (operator): each relay's pools and recent health as this instance saw it.

use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;

use super::{AppState, auth::Operator, error::ProblemResponses, error::ServiceResult};
use crate::service::relays::{self, RelayStatus};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/relays", get(list))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RelayList {
    /// Empty in sandbox mode.
    pub data: Vec<RelayStatus>,
    /// Health is per mailgate instance: each process reports what it saw.
    pub instance_local: bool,
}

/// Configured relays with their recent health.
#[utoipa::path(get, path = "/v1/relays", operation_id = "list_relays", tag = "operator",
    responses((status = 200, description = "Relays", body = RelayList), ProblemResponses),
    security(("operator" = [])))]
pub async fn list(State(state): State<AppState>, _op: Operator) -> ServiceResult<Json<RelayList>> {
    Ok(Json(RelayList {
        data: relays::statuses(&state),
        instance_local: true,
    }))
}
