//! `/v1/api-keys`: the operator manages any project's keys; a key with the `keys` scope
//! manages its own project's. A key is shown in clear once, in the create response.
//! A key's send limits are set at creation and changed with `PATCH /v1/api-keys/{id}`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get},
};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::{
    AppState,
    auth::Principal,
    error::{ApiError, ApiResult, FieldError},
    extract::{AppJson, AppQuery},
    openapi::ProblemResponses,
};
use crate::{
    domain::{
        ApiKeySecret, Scope,
        api_key::{KeyLimits, check_burst, check_daily_quota, check_rate, parse_scopes},
    },
    store::{
        api_keys::{self, ApiKeyInfo, LimitsChange},
        projects,
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/api-keys", get(list).post(create))
        .route("/v1/api-keys/{id}", delete(revoke).patch(update))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Project name; required for the operator, implied for a project key.
    #[serde(default)]
    pub project: Option<String>,
    /// Scope names; an item may also list several, comma-separated.
    #[schema(min_items = 1, value_type = Vec<Scope>)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub test: bool,
    /// At most 100 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub name: Option<String>,
    /// Messages per second; unset: `ratelimit.send.rate_per_sec`.
    #[serde(default)]
    #[schema(minimum = 0.001, maximum = 1000000)]
    pub rate_per_sec: Option<f64>,
    /// Messages at once; unset: `ratelimit.send.burst`.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub burst: Option<i64>,
    /// Messages per UTC day; unset: `ratelimit.send.daily_quota`.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1000000000)]
    pub daily_quota: Option<i64>,
}

/// A `PATCH`: an absent field stays as it is, `null` returns it to the configured default.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// Messages per second; `null` returns to the configured default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, nullable, minimum = 0.001, maximum = 1000000)]
    pub rate_per_sec: Option<Option<f64>>,
    /// Messages at once; `null` returns to the configured default.
    #[serde(default, deserialize_with = "present_whole_number")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 1000000)]
    pub burst: Option<Option<i64>>,
    /// Messages per day; `null` returns to the configured default.
    #[serde(default, deserialize_with = "present_whole_number")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 1000000000)]
    pub daily_quota: Option<Option<i64>>,
}

/// Tells `"field": null` (Some(None)) from a missing field (None, by `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A JSON number with no fraction, `5.0` included: JSON Schema's `integer`. A fraction or a
/// number beyond `i64` is refused (the range checks then name the allowed bounds).
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(Some(i));
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(Some(f as i64)),
                Some(f) if f.fract() == 0.0 => Ok(Some(if f > 0.0 { i64::MAX } else { i64::MIN })),
                _ => Err(D::Error::custom(format!(
                    "expected a whole number, got {n}"
                ))),
            }
        }
    }
}

fn present_whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    whole_number(d).map(Some)
}

/// Checks each given limit, reporting every bad field at once.
fn check_limits(rate: Option<f64>, burst: Option<i64>, quota: Option<i64>) -> ApiResult<KeyLimits> {
    fn field<T>(errors: &mut Vec<FieldError>, name: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|m| errors.push(FieldError::new(name, m))).ok()
    }
    let mut errors = Vec::new();
    let limits = KeyLimits {
        rate_per_sec: rate.and_then(|r| field(&mut errors, "rate_per_sec", check_rate(r))),
        burst: burst.and_then(|b| field(&mut errors, "burst", check_burst(b))),
        daily_quota: quota.and_then(|q| field(&mut errors, "daily_quota", check_daily_quota(q))),
    };
    if errors.is_empty() {
        Ok(limits)
    } else {
        Err(ApiError::Validation(errors))
    }
}

impl UpdateKey {
    /// The change, each limit checked against its bounds (every bad one named).
    pub fn change(&self) -> ApiResult<LimitsChange> {
        let limits = check_limits(
            self.rate_per_sec.flatten(),
            self.burst.flatten(),
            self.daily_quota.flatten(),
        )?;
        Ok(LimitsChange {
            rate_per_sec: self.rate_per_sec.map(|_| limits.rate_per_sec),
            burst: self.burst.map(|_| limits.burst),
            daily_quota: self.daily_quota.map(|_| limits.daily_quota),
        })
    }
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
#[utoipa::path(post, path = "/v1/api-keys", operation_id = "create_api_key", tag = "keys", request_body = CreateKey,
    responses((status = 201, description = "Created", body = CreatedKey), ProblemResponses),
    security(("api_key" = []), ("operator" = [])))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    AppJson(body): AppJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let project_id = target_project(&state, &who, body.project.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(create_in(&state, project_id, &body).await?),
    ))
}

/// Checks a new key's scopes, name and limits and creates it in `project_id` (the console
/// creates keys through here too); the answer holds the key in clear, once.
pub async fn create_in(
    state: &AppState,
    project_id: Uuid,
    body: &CreateKey,
) -> ApiResult<CreatedKey> {
    let scopes = parse_scopes(&body.scopes).map_err(|m| ApiError::validation("scopes", m))?;
    if let Some(name) = &body.name
        && (name.len() > 100 || name.chars().any(char::is_control))
    {
        return Err(ApiError::validation(
            "name",
            "at most 100 characters, no control characters",
        ));
    }
    let limits = check_limits(body.rate_per_sec, body.burst, body.daily_quota)?;
    let secret = ApiKeySecret::generate(body.test);
    let info = api_keys::create_with_limits(
        &state.pool,
        project_id,
        body.name.as_deref(),
        &scopes,
        &secret,
        &limits,
    )
    .await?;
    Ok(CreatedKey {
        info,
        key: secret.expose().to_string(),
    })
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
#[utoipa::path(delete, path = "/v1/api-keys/{id}", operation_id = "revoke_api_key", tag = "keys",
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
    Ok(Json(revoke_in(&state, id, scope).await?))
}

/// Revokes a key (of `project` only, when given) and forgets this process's cached copy.
pub async fn revoke_in(state: &AppState, id: Uuid, project: Option<Uuid>) -> ApiResult<ApiKeyInfo> {
    let info = api_keys::revoke(&state.pool, id, project)
        .await?
        .ok_or(ApiError::NotFound("api key"))?;
    state.keys.forget(id);
    Ok(info)
}

/// Change a key's send limits.
#[utoipa::path(patch, path = "/v1/api-keys/{id}", operation_id = "update_api_key", tag = "keys", request_body = UpdateKey,
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "The key with its new limits", body = ApiKeyInfo), ProblemResponses),
    security(("api_key" = []), ("operator" = [])))]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateKey>,
) -> ApiResult<Json<ApiKeyInfo>> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("api key"))?;
    let change = body.change()?;
    let scope = match &who {
        Principal::Operator => None,
        Principal::Key(_) => Some(target_project(&state, &who, None).await?),
    };
    Ok(Json(update_in(&state, id, scope, &change).await?))
}

/// Applies a checked change of limits to a key (of `project` only, when given).
pub async fn update_in(
    state: &AppState,
    id: Uuid,
    project: Option<Uuid>,
    change: &LimitsChange,
) -> ApiResult<ApiKeyInfo> {
    let info = api_keys::update_limits(&state.pool, id, project, change)
        .await?
        .ok_or(ApiError::NotFound("api key"))?;
    // This process applies the change at once; others when their cached copy expires.
    state.keys.forget(id);
    Ok(info)
}
