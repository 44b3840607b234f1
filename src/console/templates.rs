//! Templates: the list, and an editor that saves through the API's own checks and shows a
//! live preview (`preview`, called by console.js as you type) rendered by the same code as
//! `POST /v1/templates/validate`, errors with their line and column.

use axum::{
    Form, Json,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tera::Context;

use super::{
    error::{ConsoleError, ConsoleResult},
    session::Viewer,
    view,
};
use crate::{
    domain::{Scope, TemplateName},
    service::{
        AppState,
        error::ServiceError,
        templates::{self as ops, ValidateRequest},
    },
    store::templates as store,
    templates::{SaveMode, TemplateDraft},
};

/// Templates listed on the page; a project with more pages through the API.
const LISTED: i64 = 100;

#[derive(Serialize)]
struct Summary {
    name: String,
    description: String,
    layout: String,
    version: i32,
    updated: String,
}

#[derive(Deserialize)]
pub struct ListQuery {
    done: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Templates)?;
    let rows: Vec<Summary> = store::list(&state.pool, project, None, LISTED)
        .await?
        .into_iter()
        .map(|t| Summary {
            name: t.name,
            description: t.description.unwrap_or_default(),
            layout: t.layout.unwrap_or_default(),
            version: t.version,
            updated: t.updated_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        })
        .collect();
    let mut context = Context::new();
    context.insert("section", "templates");
    context.insert("templates", &rows);
    context.insert("done", &q.done);
    context.insert("more", &(rows.len() as i64 == LISTED));
    Ok(view::page(
        Some(&viewer),
        "templates.html",
        "Templates",
        context,
    ))
}

/// The editor's fields, as the form posts them (empty strings for empty fields).
#[derive(Default, Deserialize, Serialize)]
pub struct TemplateForm {
    #[serde(default)]
    csrf: String,
    /// Set when editing a stored template; empty for a new one.
    #[serde(default)]
    original: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    html: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    layout: String,
    /// JSON object of example variables for the preview; never saved.
    #[serde(default)]
    variables: String,
}

fn editor(
    viewer: &Viewer,
    form: &TemplateForm,
    errors: &[(String, String)],
    saved: bool,
) -> Response {
    let mut context = Context::new();
    context.insert("section", "templates");
    context.insert("t", form);
    context.insert("is_new", &form.original.is_empty());
    context.insert("errors", errors);
    context.insert("saved", &saved);
    let title = if form.original.is_empty() {
        "New template".to_string()
    } else {
        format!("Template {}", form.original)
    };
    let mut response = view::page(Some(viewer), "template.html", &title, context);
    if !errors.is_empty() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    response
}

pub async fn new(viewer: Viewer) -> ConsoleResult<Response> {
    viewer.project_for(Scope::Templates)?;
    let form = TemplateForm {
        variables: "{}".into(),
        ..Default::default()
    };
    Ok(editor(&viewer, &form, &[], false))
}

#[derive(Deserialize)]
pub struct ShowQuery {
    saved: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(q): Query<ShowQuery>,
) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Templates)?;
    if TemplateName::parse(&name).is_err() {
        return Err(ConsoleError::NotFound("template"));
    }
    let mut conn = state.pool.acquire().await?;
    let row = store::find(&mut conn, project, &name)
        .await?
        .ok_or(ConsoleError::NotFound("template"))?;
    let form = TemplateForm {
        csrf: String::new(),
        original: row.name.clone(),
        name: row.name,
        description: row.description.unwrap_or_default(),
        subject: row.subject.unwrap_or_default(),
        html: row.html.unwrap_or_default(),
        text: row.text.unwrap_or_default(),
        layout: row.layout.unwrap_or_default(),
        variables: "{}".into(),
    };
    Ok(editor(&viewer, &form, &[], q.saved.is_some()))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

pub async fn save(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<TemplateForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Templates)?;
    // A stored template keeps its name; a new one must not take an existing one's.
    let (name, mode) = if form.original.is_empty() {
        (form.name.trim().to_string(), SaveMode::Create)
    } else {
        (form.original.clone(), SaveMode::Upsert)
    };
    // Browsers send textareas with CRLF line ends; templates keep LF.
    let lf = |s: &str| non_empty(&s.replace("\r\n", "\n"));
    let draft = TemplateDraft {
        name: Some(name.clone()),
        description: lf(&form.description),
        subject: non_empty(form.subject.trim_end_matches(['\r', '\n'])),
        html: lf(&form.html),
        text: lf(&form.text),
        layout: non_empty(form.layout.trim()),
    };
    match ops::save(&state, project, &name, draft, mode).await {
        Ok((row, _)) => {
            Ok(Redirect::to(&format!("/console/templates/{}?saved=1", row.name)).into_response())
        }
        Err(ServiceError::Validation(errors)) => {
            let errors: Vec<(String, String)> =
                errors.into_iter().map(|e| (e.field, e.message)).collect();
            Ok(editor(&viewer, &form, &errors, false))
        }
        Err(ServiceError::Conflict { detail, .. }) => {
            Ok(editor(&viewer, &form, &[("name".into(), detail)], false))
        }
        Err(other) => Err(other.into()),
    }
}

/// The live preview: JSON in (the editor's parts and example variables), JSON out (the
/// rendered parts, or the errors). The CSRF token comes in a header, as fetch sends it.
pub async fn preview(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ConsoleResult<Response> {
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let project = viewer.may_change(sent, Scope::Templates)?;
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .map(|s| s.replace("\r\n", "\n"))
    };
    let variables = match field("variables").filter(|v| !v.trim().is_empty()) {
        None => None,
        Some(raw) => match serde_json::from_str::<Value>(&raw) {
            Ok(v) => Some(v),
            Err(e) => {
                return Ok(Json(json!({"errors": [{"field": "variables",
                    "message": format!("is not JSON: {e}")}]}))
                .into_response());
            }
        },
    };
    let request = ValidateRequest {
        subject: field("subject"),
        html: field("html"),
        text: field("text"),
        layout: field("layout"),
        variables,
    };
    match ops::preview(&state, project, request).await {
        Ok(rendered) => Ok(Json(json!({"rendered": rendered})).into_response()),
        Err(
            err @ (ServiceError::Validation(_)
            | ServiceError::Unprocessable { .. }
            | ServiceError::TemplateNotFound { .. }),
        ) => {
            let errors = err.field_errors().unwrap_or_else(|| {
                vec![crate::domain::FieldError::new(
                    "template",
                    err.public_detail(),
                )]
            });
            Ok(Json(json!({ "errors": errors })).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
}

pub async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<DeleteForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Templates)?;
    if TemplateName::parse(&name).is_err() {
        return Err(ConsoleError::NotFound("template"));
    }
    ops::remove(&state, project, name).await?;
    Ok(Redirect::to("/console/templates?done=deleted").into_response())
}
