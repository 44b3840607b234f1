//! `GET /v1/inbound`: the inbound log, for operators. Every message the inbound listener
//! accepted, with what it came to: a bounce, a complaint, inbound mail for a project, or
//! nothing (a forged or unmatched report, something that is not a report).

use std::collections::HashMap;

use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;
use uuid::Uuid;

use super::{
    AppState,
    auth::Operator,
    error::ProblemResponses,
    error::{ServiceError, ServiceResult},
    extract::AppQuery,
};
use crate::{
    service::paging,
    store::inbound::{self as store, InboundEntry},
};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/inbound", get(list))
}

const KINDS: [&str; 9] = [
    "bounce",
    "delay",
    "complaint",
    "received",
    "unmatched",
    "forged",
    "not_a_report",
    "ignored",
    "pending",
];

#[derive(Serialize, utoipa::ToSchema)]
pub struct InboundList {
    pub data: Vec<InboundEntry>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// The inbound log, newest first.
#[utoipa::path(get, path = "/v1/inbound", operation_id = "list_inbound", tag = "operator",
    params(
        ("kind" = Option<String>, Query, description = "What the messages came to: bounce, delay, complaint, received, unmatched, forged, not_a_report, ignored, pending"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, format = Uuid, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, description = "One page", body = InboundList), ProblemResponses),
    security(("operator" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _op: Operator,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> ServiceResult<Json<InboundList>> {
    let mut errors = Vec::new();
    let limit = paging::limit(&q, 50, 500, &mut errors);
    let kind = paging::one_of(&q, "kind", &KINDS, &mut errors);
    let before = paging::cursor(&q, |raw| raw.parse::<Uuid>().ok(), &mut errors);
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    let rows = store::list(&state.pool, kind, before, limit + 1).await?;
    let (data, next_cursor, has_more) = paging::split(rows, limit, |e| e.id.to_string());
    Ok(Json(InboundList {
        data,
        next_cursor,
        has_more,
    }))
}
