//! `/v1/templates`: a project's stored templates, and rendering them without sending.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AppState,
    auth::ProjectKey,
    error::ProblemResponses,
    error::{ServiceError, ServiceResult},
    extract::{AppJson, AppQuery},
};
use crate::{
    domain::Scope,
    service::templates::{self, ValidateRequest},
    store::templates::{Saved, TemplateRow, TemplateSummary},
    templates::{Rendered, SaveMode, TemplateDraft},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/templates", get(list).post(create))
        .route("/v1/templates/validate", post(validate))
        .route(
            "/v1/templates/{name}",
            get(show).put(replace).delete(remove),
        )
        .route("/v1/templates/{name}/render", post(render))
}

/// The body of `POST /v1/templates`: a template with its name; empty strings count as
/// absent. (Read as a [`TemplateDraft`]; this type and [`TemplateParts`] describe it.)
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewTemplate {
    /// Lowercase letters, digits, `-` and `_`, starting with a letter or digit; not `validate`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: String,
    /// At most 1000 characters; no control characters but line feeds.
    #[serde(default)]
    #[schema(
        max_length = 1000,
        pattern = r"^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*$"
    )]
    description: Option<String>,
    /// A tera template of one line.
    #[serde(default)]
    #[schema(max_length = 524288, pattern = r"^[^\r\n]*$")]
    subject: Option<String>,
    /// A tera template; `html` or `text` (not empty) is required.
    #[serde(default)]
    #[schema(max_length = 524288)]
    html: Option<String>,
    /// A tera template; `html` or `text` (not empty) is required.
    #[serde(default)]
    #[schema(max_length = 524288)]
    text: Option<String>,
    /// Another template of the project whose html and text wrap this one's.
    #[serde(default)]
    #[schema(pattern = "^([a-z0-9][a-z0-9_-]{0,63})?$")]
    layout: Option<String>,
}

/// The body of `PUT /v1/templates/{name}`: the parts of a template; empty strings count as
/// absent. The URL names the template (a `name` equal to it is also accepted).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TemplateParts {
    /// At most 1000 characters; no control characters but line feeds.
    #[serde(default)]
    #[schema(
        max_length = 1000,
        pattern = r"^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*$"
    )]
    description: Option<String>,
    /// A tera template of one line.
    #[serde(default)]
    #[schema(max_length = 524288, pattern = r"^[^\r\n]*$")]
    subject: Option<String>,
    /// A tera template; `html` or `text` (not empty) is required.
    #[serde(default)]
    #[schema(max_length = 524288)]
    html: Option<String>,
    /// A tera template; `html` or `text` (not empty) is required.
    #[serde(default)]
    #[schema(max_length = 524288)]
    text: Option<String>,
    /// Another template of the project whose html and text wrap this one's.
    #[serde(default)]
    #[schema(pattern = "^([a-z0-9][a-z0-9_-]{0,63})?$")]
    layout: Option<String>,
}

/// Create a template; every part is checked and must parse.
#[utoipa::path(post, path = "/v1/templates", operation_id = "create_template", tag = "templates", request_body = NewTemplate,
    responses((status = 201, description = "Created", body = TemplateRow), ProblemResponses),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    key: ProjectKey,
    AppJson(draft): AppJson<TemplateDraft>,
) -> ServiceResult<(StatusCode, Json<TemplateRow>)> {
    let key = key.require(Scope::Templates)?;
    let name = draft
        .name
        .clone()
        .ok_or_else(|| ServiceError::validation("name", "is required"))?;
    let (row, _) = templates::save(&state, key.project_id, &name, draft, SaveMode::Create).await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Create or replace the template named in the URL; 201 when it is new.
#[utoipa::path(put, path = "/v1/templates/{name}", operation_id = "replace_template", tag = "templates", request_body = TemplateParts,
    params(("name" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", description = "Template name")),
    responses((status = 200, description = "Replaced", body = TemplateRow), (status = 201, description = "Created", body = TemplateRow), ProblemResponses),
    security(("api_key" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(name): Path<String>,
    AppJson(draft): AppJson<TemplateDraft>,
) -> ServiceResult<(StatusCode, Json<TemplateRow>)> {
    let key = key.require(Scope::Templates)?;
    if draft.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ServiceError::validation(
            "name",
            "must match the name in the URL; templates are not renamed",
        ));
    }
    let (row, saved) =
        templates::save(&state, key.project_id, &name, draft, SaveMode::Upsert).await?;
    let status = if saved == Saved::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(row)))
}

/// A stored template.
#[utoipa::path(get, path = "/v1/templates/{name}", operation_id = "show_template", tag = "templates",
    params(("name" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", description = "Template name")),
    responses((status = 200, description = "The template", body = TemplateRow), ProblemResponses),
    security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(name): Path<String>,
) -> ServiceResult<Json<TemplateRow>> {
    let key = key.require(Scope::Templates)?;
    Ok(Json(templates::find(&state, key.project_id, name).await?))
}

/// Delete a template (not while it is another template's layout).
#[utoipa::path(delete, path = "/v1/templates/{name}", operation_id = "remove_template", tag = "templates",
    params(("name" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", description = "Template name")),
    responses((status = 204, description = "Deleted"), ProblemResponses),
    security(("api_key" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(name): Path<String>,
) -> ServiceResult<StatusCode> {
    let key = key.require(Scope::Templates)?;
    let name = templates::template_name(name)?;
    templates::remove(&state, key.project_id, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TemplatePage {
    pub data: Vec<TemplateSummary>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// The project's templates by name, without their sources.
#[utoipa::path(get, path = "/v1/templates", operation_id = "list_templates", tag = "templates",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "One page", body = TemplatePage), ProblemResponses),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    key: ProjectKey,
    AppQuery(q): AppQuery<ListQuery>,
) -> ServiceResult<Json<TemplatePage>> {
    let key = key.require(Scope::Templates)?;
    let (data, next_cursor) = templates::list(
        &state,
        key.project_id,
        q.limit.as_deref(),
        q.cursor.as_deref(),
    )
    .await?;
    Ok(Json(TemplatePage { data, next_cursor }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    /// A JSON object; `{}` when absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
}

/// Render a stored template without sending: a preview, or a check of the variables.
#[utoipa::path(post, path = "/v1/templates/{name}/render", operation_id = "render_template", tag = "templates", request_body = RenderRequest,
    params(("name" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", description = "Template name")),
    responses((status = 200, description = "Rendered parts", body = Rendered), ProblemResponses),
    security(("api_key" = [])))]
pub async fn render(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(name): Path<String>,
    AppJson(body): AppJson<RenderRequest>,
) -> ServiceResult<Json<Rendered>> {
    let key = key.require(Scope::Templates)?;
    Ok(Json(
        templates::render(&state, key.project_id, name, body.variables).await?,
    ))
}

/// Check and render content that is not saved: what saving and rendering it would say.
#[utoipa::path(post, path = "/v1/templates/validate", operation_id = "validate_template", tag = "templates", request_body = ValidateRequest,
    responses((status = 200, description = "Rendered parts", body = Rendered), ProblemResponses),
    security(("api_key" = [])))]
pub async fn validate(
    State(state): State<AppState>,
    key: ProjectKey,
    AppJson(body): AppJson<ValidateRequest>,
) -> ServiceResult<Json<Rendered>> {
    let key = key.require(Scope::Templates)?;
    Ok(Json(
        templates::preview(&state, key.project_id, body).await?,
    ))
}
