//! `GET /v1/relays` (operator): each relay's pools and recent health as this instance saw it.

use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;

use super::{AppState, auth::Operator, error::ApiResult, openapi::ProblemResponses};
use crate::delivery::relay::{Pacing, RelayHealth};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/relays", get(list))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RelayStatus {
    pub name: String,
    pub host: String,
    /// Pools listing this relay, in which it is tried by priority.
    pub pools: Vec<String>,
    pub health: RelayHealth,
    /// Its rate and connection caps, and the back-off its throttling replies caused.
    pub pacing: Pacing,
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
pub async fn list(State(state): State<AppState>, _op: Operator) -> ApiResult<Json<RelayList>> {
    Ok(Json(RelayList {
        data: statuses(&state),
        instance_local: true,
    }))
}

/// Every configured relay with its pools and the health this instance saw (the console's
/// queue page shows the same).
pub fn statuses(state: &AppState) -> Vec<RelayStatus> {
    state
        .relays
        .all()
        .map(|r| RelayStatus {
            name: r.name.clone(),
            host: r.host.clone(),
            pools: state.relays.pools_of(&r.name),
            health: r.health(),
            pacing: r.pacing(),
        })
        .collect()
}
