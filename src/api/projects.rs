//! `/v1/projects`: tenants, for the operator only.

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde::Deserialize;

use super::{
    AppState,
    auth::Operator,
    error::{ApiError, ApiResult},
    extract::AppJson,
};
use crate::store::projects::{self, Project};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/projects", get(list).post(create))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
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

async fn create(
    State(state): State<AppState>,
    _op: Operator,
    AppJson(body): AppJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    check_project_name(&body.name).map_err(|m| ApiError::validation("name", m))?;
    let (project, created) = projects::ensure(&state.pool, &body.name).await?;
    if !created {
        return Err(ApiError::Conflict {
            code: "project_exists",
            detail: format!("a project named `{}` already exists", body.name),
        });
    }
    Ok((StatusCode::CREATED, Json(project)))
}

async fn list(State(state): State<AppState>, _op: Operator) -> ApiResult<Json<serde_json::Value>> {
    let data = projects::list(&state.pool).await?;
    Ok(Json(serde_json::json!({ "data": data })))
}
