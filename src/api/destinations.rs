//! `GET /v1/destinations` (operator): where waiting mail is headed, per destination site.

use axum::{Json, Router, extract::State, routing::get};

use super::{AppState, auth::Operator, error::ProblemResponses, error::ServiceResult};
use crate::service::destinations::{self, DestinationList};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/destinations", get(list))
}

/// Destination sites with mail waiting: their domains, queued and deferred counts, the last
/// reply, and per egress address the pause, back-off and open connections. At most 100
/// domains, counted over the 50,000 waiting recipients due soonest.
#[utoipa::path(get, path = "/v1/destinations", operation_id = "list_destinations", tag = "operator",
    responses((status = 200, description = "Destinations with mail waiting", body = DestinationList), ProblemResponses),
    security(("operator" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _op: Operator,
) -> ServiceResult<Json<DestinationList>> {
    Ok(Json(destinations::list(&state).await?))
}
