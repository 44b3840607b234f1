//! `/v1/projects`: tenants, for the operator only.

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde::Deserialize;

use super::{
    AppState,
    auth::Operator,
    error::{ApiError, ApiResult},
    extract::AppJson,
    openapi::ProblemResponses,
};
use crate::store::projects::{self, Project};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/projects", get(list).post(create))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// 1 to 64 letters, digits, `-` or `_`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// A configured relay or pool for this project's mail when a send names none.
    #[serde(default)]
    pub default_relay: Option<String>,
}

/// Project names are slugs so they work unquoted in CLIs and URLs.
pub fn check_project_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err("project names are 1 to 64 letters, digits, `-` or `_`".into())
    }
}

/// Create a project.
#[utoipa::path(post, path = "/v1/projects", operation_id = "create_project", tag = "operator", request_body = CreateProject,
    responses((status = 201, description = "Created", body = Project), ProblemResponses),
    security(("operator" = [])))]
pub async fn create(
    State(state): State<AppState>,
    _op: Operator,
    AppJson(body): AppJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    check_project_name(&body.name).map_err(|m| ApiError::validation("name", m))?;
    if let Some(relay) = &body.default_relay
        && !state.relays.contains(relay)
    {
        return Err(ApiError::validation(
            "default_relay",
            format!("no relay or pool named `{relay}` is configured"),
        ));
    }
    let (mut project, created) = projects::ensure(&state.pool, &body.name).await?;
    if !created {
        return Err(ApiError::Conflict {
            code: "project_exists",
            detail: format!("a project named `{}` already exists", body.name),
        });
    }
    if body.default_relay.is_some() {
        project =
            projects::set_default_relay(&state.pool, &body.name, body.default_relay.as_deref())
                .await?
                .unwrap_or(project);
    }
    Ok((StatusCode::CREATED, Json(project)))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProjectList {
    pub data: Vec<Project>,
}

/// List projects.
#[utoipa::path(get, path = "/v1/projects", operation_id = "list_projects", tag = "operator",
    responses((status = 200, description = "Every project", body = ProjectList), ProblemResponses),
    security(("operator" = [])))]
pub async fn list(State(state): State<AppState>, _op: Operator) -> ApiResult<Json<ProjectList>> {
    let data = projects::list(&state.pool).await?;
    Ok(Json(ProjectList { data }))
}
