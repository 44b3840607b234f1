//! A project's stored templates: save (create or replace, checked), read, delete (not while
//! another template's layout), render stored ones and preview unsaved content.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{
    AppState,
    error::{Conflict, ServiceError, ServiceResult},
};
use crate::{
    domain::TemplateName,
    store::templates::{self as store, Saved, TemplateRow, TemplateSummary},
    templates::{
        self, Rendered, SaveMode, TemplateDraft, TemplateError, cache::sources, engine, save,
    },
};

/// A name that no template can have is simply not found.
pub fn template_name(name: String) -> ServiceResult<String> {
    match TemplateName::parse(&name) {
        Ok(_) => Ok(name),
        Err(_) => Err(ServiceError::TemplateNotFound {
            name,
            in_request: false,
        }),
    }
}

/// Checks a draft named `name` and saves it.
pub async fn save(
    state: &AppState,
    project_id: Uuid,
    name: &str,
    draft: TemplateDraft,
    mode: SaveMode,
) -> ServiceResult<(TemplateRow, Saved)> {
    let checked = save::check(name, draft).map_err(ServiceError::Validation)?;
    let mut tx = state.pool.begin().await?;
    let saved = save::save(&mut tx, project_id, &checked, mode).await?;
    tx.commit().await?;
    Ok(saved)
}

/// Deletes a template, unless it is another template's layout.
pub async fn remove(state: &AppState, project_id: Uuid, name: String) -> ServiceResult<()> {
    let in_use = |users: Vec<String>| ServiceError::Conflict {
        kind: Conflict::TemplateInUse,
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
        Ok(false) => Err(ServiceError::TemplateNotFound {
            name,
            in_request: false,
        }),
        // Another request made it a layout in the meantime.
        Err(e) if store::is_layout_reference_error(&e) => {
            let users = store::layout_users(&mut conn, project_id, &name).await?;
            Err(in_use(users))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn variables_or_empty(variables: Option<Value>) -> Value {
    variables.unwrap_or_else(|| Value::Object(Default::default()))
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

/// What saving and rendering unsaved content would say: the rendered parts, or each error
/// with its line and column.
pub async fn preview(
    state: &AppState,
    project_id: Uuid,
    body: ValidateRequest,
) -> ServiceResult<Rendered> {
    let empty_to_none = |v: Option<String>| v.filter(|s| !s.is_empty());
    let draft = TemplateDraft {
        subject: empty_to_none(body.subject),
        html: empty_to_none(body.html),
        text: empty_to_none(body.text),
        ..Default::default()
    };
    save::check_parts(&draft).map_err(ServiceError::Validation)?;
    let layout = match empty_to_none(body.layout) {
        Some(name) => {
            let mut conn = state.pool.acquire().await?;
            Some(save::load_layout(&mut conn, project_id, &name).await?)
        }
        None => None,
    };
    let compiled = engine::compile(draft.sources(), layout.as_ref().map(sources), None)
        .map_err(|errors| ServiceError::from(TemplateError::Invalid(errors)))?;
    let rendered = templates::render(
        Arc::new(compiled),
        variables_or_empty(body.variables),
        state.config.http.max_message_bytes,
    )
    .await?;
    Ok(rendered)
}

/// A stored template of the project.
pub async fn find(state: &AppState, project_id: Uuid, name: String) -> ServiceResult<TemplateRow> {
    let name = template_name(name)?;
    let mut conn = state.pool.acquire().await?;
    store::find(&mut conn, project_id, &name)
        .await?
        .ok_or(ServiceError::TemplateNotFound {
            name,
            in_request: false,
        })
}

/// Renders a stored template with `variables` (`{}` when absent), sending nothing.
pub async fn render(
    state: &AppState,
    project_id: Uuid,
    name: String,
    variables: Option<Value>,
) -> ServiceResult<Rendered> {
    let name = template_name(name)?;
    Ok(templates::render_stored(
        &state.templates,
        &state.pool,
        project_id,
        &name,
        variables_or_empty(variables),
        state.config.http.max_message_bytes,
    )
    .await?)
}

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100;

/// One page of the project's templates by name (`limit` 1 to 100, default 50), with the
/// cursor of the next page.
pub async fn list(
    state: &AppState,
    project_id: Uuid,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> ServiceResult<(Vec<TemplateSummary>, Option<String>)> {
    let limit = match limit {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ServiceError::validation("limit", format!("must be a number from 1 to {MAX_PAGE}"))
            })?,
    };
    let data = store::list(&state.pool, project_id, cursor, limit).await?;
    let next_cursor = if data.len() as i64 == limit {
        data.last().map(|t| t.name.clone())
    } else {
        None
    };
    Ok((data, next_cursor))
}
