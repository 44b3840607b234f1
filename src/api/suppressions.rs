//! `/v1/suppressions`: the project's addresses that are never mailed. Bounces add to it by
//! themselves; people add complaints and manual entries, and remove addresses to mail them again.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::get,
};
use serde::Deserialize;
use std::collections::HashMap;

use super::{
    AppState,
    auth::ProjectKey,
    error::ProblemResponses,
    error::ServiceResult,
    extract::{AppJson, AppQuery},
};
use crate::{
    domain::Scope,
    service::suppressions::{self, Reason, SuppressionList},
    store::suppressions::Suppression,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/suppressions", get(list).post(add))
        .route("/v1/suppressions/{email}", get(show).delete(remove))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSuppression {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Default `manual`.
    #[serde(default)]
    #[schema(value_type = Option<Reason>)]
    pub reason: Option<String>,
    /// A note kept with the entry.
    #[serde(default)]
    #[schema(max_length = 1000, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub detail: Option<String>,
}

/// Suppress an address: later sends report it `suppressed` and never relay to it.
///
/// An address already on the list keeps its entry (200); a new one answers 201.
#[utoipa::path(post, path = "/v1/suppressions", operation_id = "add_suppression", tag = "suppressions", request_body = AddSuppression,
    responses(
        (status = 201, description = "Added", body = Suppression),
        (status = 200, description = "Already on the list: the existing entry", body = Suppression),
        ProblemResponses),
    security(("api_key" = [])))]
pub async fn add(
    State(state): State<AppState>,
    key: ProjectKey,
    AppJson(body): AppJson<AddSuppression>,
) -> ServiceResult<(StatusCode, Json<Suppression>)> {
    let key = key.require(Scope::Suppressions)?;
    let (entry, created) = suppressions::add(
        &state,
        key.project_id,
        &body.email,
        body.reason.as_deref(),
        body.detail.as_deref(),
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(entry)))
}

/// List suppressed addresses, newest first.
#[utoipa::path(get, path = "/v1/suppressions", operation_id = "list_suppressions", tag = "suppressions",
    params(
        ("reason" = Option<Reason>, Query, description = "Entries with this reason"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "1 to 500, default 50"),
        ("cursor" = Option<String>, Query, pattern = r"^[A-Za-b][A-Za-z0-9_-]{9}[AEIMQUYcgkosw048]", description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, description = "One page", body = SuppressionList), ProblemResponses),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    key: ProjectKey,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> ServiceResult<Json<SuppressionList>> {
    let key = key.require(Scope::Suppressions)?;
    Ok(Json(suppressions::list(&state, key.project_id, &q).await?))
}

/// Whether an address is suppressed, and why.
#[utoipa::path(get, path = "/v1/suppressions/{email}", operation_id = "show_suppression", tag = "suppressions",
    params(("email" = String, Path, description = "The address (any case)")),
    responses((status = 200, description = "The entry", body = Suppression), ProblemResponses),
    security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(email): Path<String>,
) -> ServiceResult<Json<Suppression>> {
    let key = key.require(Scope::Suppressions)?;
    Ok(Json(
        suppressions::find(&state, key.project_id, &email).await?,
    ))
}

/// Remove an address from the list: later sends go to it again.
#[utoipa::path(delete, path = "/v1/suppressions/{email}", operation_id = "remove_suppression", tag = "suppressions",
    params(("email" = String, Path, description = "The address (any case)")),
    responses((status = 204, description = "Removed"), ProblemResponses),
    security(("api_key" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(email): Path<String>,
) -> ServiceResult<StatusCode> {
    let key = key.require(Scope::Suppressions)?;
    suppressions::remove(&state, key.project_id, &email).await?;
    Ok(StatusCode::NO_CONTENT)
}
