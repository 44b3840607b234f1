//! `/v1/api-keys`: the operator manages any project's keys; a key with the `keys` scope
//! manages its own project's. A key is shown in clear once, in the create response.

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
    auth::Principal,
    error::{ApiError, ApiResult},
    extract::{AppJson, AppQuery},
    openapi::ProblemResponses,
};
use crate::{
    domain::{ApiKeySecret, Scope, api_key::parse_scopes},
    store::{
        api_keys::{self, ApiKeyInfo},
        projects,
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/api-keys", get(list).post(create))
        .route("/v1/api-keys/{id}", delete(revoke))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Project name; required for the operator, implied for a project key.
    #[serde(default)]
    pub project: Option<String>,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub test: bool,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// The key in clear: shown this once, stored only as a hash.
    pub key: String,
}

/// The project a request may act on: its own for a key, the named one for the operator.
async fn target_project(state: &AppState, who: &Principal, named: Option<&str>) -> ApiResult<Uuid> {
    match who {
        Principal::Key(key) => {
            if !key.scopes.contains(&Scope::Keys) {
                return Err(ApiError::ForbiddenScope("keys"));
            }
            if let Some(name) = named {
                // Naming another tenant reads as "no such project".
                let project = projects::find_by_name(&state.pool, name).await?;
                if project.map(|p| p.id) != Some(key.project_id) {
                    return Err(ApiError::NotFound("project"));
                }
            }
            Ok(key.project_id)
        }
        Principal::Operator => {
            let name = named.ok_or_else(|| ApiError::validation("project", "is required"))?;
            let project = projects::find_by_name(&state.pool, name)
                .await?
                .ok_or(ApiError::NotFound("project"))?;
            Ok(project.id)
        }
    }
}

/// Create a key; the key is in the answer, once.
#[utoipa::path(post, path = "/v1/api-keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, description = "Created", body = CreatedKey), ProblemResponses),
    security(("api_key" = []), ("operator" = [])))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    AppJson(body): AppJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let project_id = target_project(&state, &who, body.project.as_deref()).await?;
    let scopes = parse_scopes(&body.scopes).map_err(|m| ApiError::validation("scopes", m))?;
    if let Some(name) = &body.name
        && (name.len() > 100 || name.chars().any(char::is_control))
    {
        return Err(ApiError::validation(
            "name",
            "at most 100 characters, no control characters",
        ));
    }
    let secret = ApiKeySecret::generate(body.test);
    let info = api_keys::create(
        &state.pool,
        project_id,
        body.name.as_deref(),
        &scopes,
        &secret,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            info,
            key: secret.expose().to_string(),
        }),
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
#[utoipa::path(get, path = "/v1/api-keys", tag = "keys",
    params(("project" = Option<String>, Query, description = "Project name (operator only; a key sees its own project)")),
    responses((status = 200, description = "Keys", body = ApiKeyList), ProblemResponses),
    security(("api_key" = []), ("operator" = [])))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    AppQuery(q): AppQuery<ListQuery>,
) -> ApiResult<Json<ApiKeyList>> {
    let project_id = match (&who, q.project.as_deref()) {
        (Principal::Operator, None) => None,
        _ => Some(target_project(&state, &who, q.project.as_deref()).await?),
    };
    let data = api_keys::list(&state.pool, project_id).await?;
    Ok(Json(ApiKeyList { data }))
}

/// Revoke a key; requests with it fail within `http.key_cache_secs`.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "The revoked key", body = ApiKeyInfo), ProblemResponses),
    security(("api_key" = []), ("operator" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKeyInfo>> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("api key"))?;
    let scope = match &who {
        Principal::Operator => None,
        Principal::Key(_) => Some(target_project(&state, &who, None).await?),
    };
    let info = api_keys::revoke(&state.pool, id, scope)
        .await?
        .ok_or(ApiError::NotFound("api key"))?;
    state.keys.forget(id);
    Ok(Json(info))
}
