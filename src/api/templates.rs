//! `/v1/templates`: a project's stored templates, and rendering them without sending.

use std::sync::Arc;

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
    error::{ApiError, ApiResult},
    extract::{AppJson, AppQuery},
    openapi::ProblemResponses,
};
use crate::{
    domain::{Scope, TemplateName},
    store::templates::{self as store, Saved, TemplateRow, TemplateSummary},
    templates::{
        self, Rendered, SaveMode, TemplateDraft, TemplateError, cache::sources, engine, save,
    },
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

/// A name that no template can have is simply not found.
fn template_name(name: String) -> ApiResult<String> {
    match TemplateName::parse(&name) {
        Ok(_) => Ok(name),
        Err(_) => Err(ApiError::TemplateNotFound(name)),
    }
}

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100;

/// Create a template; every part is checked and must parse.
#[utoipa::path(post, path = "/v1/templates", operation_id = "create_template", tag = "templates", request_body = NewTemplate,
    responses((status = 201, description = "Created", body = TemplateRow), ProblemResponses),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    key: ProjectKey,
    AppJson(draft): AppJson<TemplateDraft>,
) -> ApiResult<(StatusCode, Json<TemplateRow>)> {
    let key = key.require(Scope::Templates)?;
    let name = draft
        .name
        .clone()
        .ok_or_else(|| ApiError::validation("name", "is required"))?;
    let (row, _) = save_draft(&state, key.project_id, &name, draft, SaveMode::Create).await?;
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
) -> ApiResult<(StatusCode, Json<TemplateRow>)> {
    let key = key.require(Scope::Templates)?;
    if draft.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::validation(
            "name",
            "must match the name in the URL; templates are not renamed",
        ));
    }
    let (row, saved) = save_draft(&state, key.project_id, &name, draft, SaveMode::Upsert).await?;
    let status = if saved == Saved::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(row)))
}

/// Checks a draft named `name` and saves it (the console's editor saves through here too).
pub async fn save_draft(
    state: &AppState,
    project_id: uuid::Uuid,
    name: &str,
    draft: TemplateDraft,
    mode: SaveMode,
) -> ApiResult<(TemplateRow, Saved)> {
    let checked = save::check(name, draft).map_err(ApiError::Validation)?;
    let mut tx = state.pool.begin().await?;
    let saved = save::save(&mut tx, project_id, &checked, mode).await?;
    tx.commit().await?;
    Ok(saved)
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
) -> ApiResult<Json<TemplateRow>> {
    let key = key.require(Scope::Templates)?;
    let name = template_name(name)?;
    let mut conn = state.pool.acquire().await?;
    let row = store::find(&mut conn, key.project_id, &name)
        .await?
        .ok_or(ApiError::TemplateNotFound(name))?;
    Ok(Json(row))
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
) -> ApiResult<StatusCode> {
    let key = key.require(Scope::Templates)?;
    remove_named(&state, key.project_id, template_name(name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a template, unless it is another template's layout (the console's delete too).
pub async fn remove_named(state: &AppState, project_id: uuid::Uuid, name: String) -> ApiResult<()> {
    let in_use = |users: Vec<String>| ApiError::Conflict {
        code: "template_in_use",
        detail: format!(
            "`{name}` is the layout of {}; change or delete those templates first",
            users.join(", ")
        ),
    };
    let mut conn = state.pool.acquire().await?;
    let users = store::layout_users(&mut conn, project_id, &name).await?;
    if !users.is_empty() {
        return Err(in_use(users));
    }
    match store::delete(&mut conn, project_id, &name).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::TemplateNotFound(name)),
        // Another request made it a layout in the meantime.
        Err(e) if store::is_layout_reference_error(&e) => {
            let users = store::layout_users(&mut conn, project_id, &name).await?;
            Err(in_use(users))
        }
        Err(e) => Err(e.into()),
    }
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
) -> ApiResult<Json<TemplatePage>> {
    let key = key.require(Scope::Templates)?;
    let limit = match q.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::validation("limit", format!("must be a number from 1 to {MAX_PAGE}"))
            })?,
    };
    let data = store::list(&state.pool, key.project_id, q.cursor.as_deref(), limit).await?;
    let next_cursor = if data.len() as i64 == limit {
        data.last().map(|t| t.name.clone())
    } else {
        None
    };
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

fn variables_or_empty(variables: Option<Value>) -> Value {
    variables.unwrap_or_else(|| Value::Object(Default::default()))
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
) -> ApiResult<Json<Rendered>> {
    let key = key.require(Scope::Templates)?;
    let name = template_name(name)?;
    let rendered = templates::render_stored(
        &state.templates,
        &state.pool,
        key.project_id,
        &name,
        variables_or_empty(body.variables),
        state.config.http.max_message_bytes,
    )
    .await?;
    Ok(Json(rendered))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// A tera template of one line.
    #[serde(default)]
    #[schema(max_length = 524288, pattern = r"^[^\r\n]*$")]
    pub subject: Option<String>,
    /// A tera template; `html` or `text` (not empty) is required.
    #[serde(default)]
    #[schema(max_length = 524288)]
    pub html: Option<String>,
    /// A tera template; `html` or `text` (not empty) is required.
    #[serde(default)]
    #[schema(max_length = 524288)]
    pub text: Option<String>,
    /// A stored template of the project to wrap the content with.
    #[serde(default)]
    #[schema(pattern = "^([a-z0-9][a-z0-9_-]{0,63})?$")]
    pub layout: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Value>,
}

/// Check and render content that is not saved: what saving and rendering it would say.
#[utoipa::path(post, path = "/v1/templates/validate", operation_id = "validate_template", tag = "templates", request_body = ValidateRequest,
    responses((status = 200, description = "Rendered parts", body = Rendered), ProblemResponses),
    security(("api_key" = [])))]
pub async fn validate(
    State(state): State<AppState>,
    key: ProjectKey,
    AppJson(body): AppJson<ValidateRequest>,
) -> ApiResult<Json<Rendered>> {
    let key = key.require(Scope::Templates)?;
    Ok(Json(preview(&state, key.project_id, body).await?))
}

/// What saving and rendering unsaved content would say: the rendered parts, or each error
/// with its line and column (the console's live preview shows the same).
pub async fn preview(
    state: &AppState,
    project_id: uuid::Uuid,
    body: ValidateRequest,
) -> ApiResult<Rendered> {
    let empty_to_none = |v: Option<String>| v.filter(|s| !s.is_empty());
    let draft = TemplateDraft {
        subject: empty_to_none(body.subject),
        html: empty_to_none(body.html),
        text: empty_to_none(body.text),
        ..Default::default()
    };
    save::check_parts(&draft).map_err(ApiError::Validation)?;
    let layout = match empty_to_none(body.layout) {
        Some(name) => {
            let mut conn = state.pool.acquire().await?;
            Some(save::load_layout(&mut conn, project_id, &name).await?)
        }
        None => None,
    };
    let compiled = engine::compile(draft.sources(), layout.as_ref().map(sources), None)
        .map_err(|errors| ApiError::from(TemplateError::Invalid(errors)))?;
    let rendered = templates::render(
        Arc::new(compiled),
        variables_or_empty(body.variables),
        state.config.http.max_message_bytes,
    )
    .await?;
    Ok(rendered)
}
