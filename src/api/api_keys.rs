//! `/v1/api-keys`: the operator manages any project's keys; a key with the `keys` scope
//! manages its own project's. A key is shown in clear once, in the create response.
//! A key's send limits are set at creation and changed with `PATCH /v1/api-keys/{id}`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    AppState,
    error::ProblemResponses,
    error::{ServiceError, ServiceResult},
    extract::{AppJson, AppQuery},
};
use crate::{
    service::{
        Caller,
        keys::{self, CreateKey, CreatedKey, UpdateKey},
    },
    store::api_keys::ApiKeyInfo,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/api-keys", get(list).post(create))
        .route("/v1/api-keys/{id}", delete(revoke).patch(update))
}

/// Create a key; the key is in the answer, once.
#[utoipa::path(post, path = "/v1/api-keys", operation_id = "create_api_key", tag = "keys", request_body = CreateKey,
    responses((status = 201, description = "Created", body = CreatedKey), ProblemResponses),
    security(("api_key" = []), ("operator" = [])))]
pub async fn create(
    State(state): State<AppState>,
    who: Caller,
    AppJson(body): AppJson<CreateKey>,
) -> ServiceResult<(StatusCode, Json<CreatedKey>)> {
    let project_id = keys::target_project(&state, &who, body.project.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(keys::create(&state, &who, project_id, &body).await?),
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub project: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKeyInfo>,
}

/// List keys (never the keys themselves).
#[utoipa::path(get, path = "/v1/api-keys", operation_id = "list_api_keys", tag = "keys",
    params(("project" = Option<String>, Query, description = "Project name (operator only; a key sees its own project)")),
    responses((status = 200, description = "Keys", body = ApiKeyList), ProblemResponses),
    security(("api_key" = []), ("operator" = [])))]
pub async fn list(
    State(state): State<AppState>,
    who: Caller,
    AppQuery(q): AppQuery<ListQuery>,
) -> ServiceResult<Json<ApiKeyList>> {
    let data = keys::list(&state, &who, q.project.as_deref()).await?;
    Ok(Json(ApiKeyList { data }))
}

/// Revoke a key; requests with it fail within `http.key_cache_secs`.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", operation_id = "revoke_api_key", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "The revoked key", body = ApiKeyInfo), ProblemResponses),
    security(("api_key" = []), ("operator" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    who: Caller,
    Path(id): Path<String>,
) -> ServiceResult<Json<ApiKeyInfo>> {
    let id = Uuid::parse_str(&id).map_err(|_| ServiceError::NotFound("api key"))?;
    let project = keys::confine(&state, &who).await?;
    Ok(Json(keys::revoke(&state, &who, id, project).await?))
}

/// Change a key's send limits.
#[utoipa::path(patch, path = "/v1/api-keys/{id}", operation_id = "update_api_key", tag = "keys", request_body = UpdateKey,
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "The key with its new limits", body = ApiKeyInfo), ProblemResponses),
    security(("api_key" = []), ("operator" = [])))]
pub async fn update(
    State(state): State<AppState>,
    who: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateKey>,
) -> ServiceResult<Json<ApiKeyInfo>> {
    let id = Uuid::parse_str(&id).map_err(|_| ServiceError::NotFound("api key"))?;
    let change = body.change()?;
    let project = keys::confine(&state, &who).await?;
    Ok(Json(
        keys::update(&state, &who, id, project, &change).await?,
    ))
}
