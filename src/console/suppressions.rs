//! The suppression list: page through it, find an address, add one, remove one. Adding goes
//! through the API's own checks (`service::suppressions::add`).

use std::collections::HashMap;

use axum::{
    Form,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, Serialize};
use tera::Context;

use super::{
    error::{ConsoleResult, encode_component},
    session::Viewer,
    view,
};
use crate::{
    domain::Scope,
    service::{
        AppState,
        error::ServiceError,
        suppressions::{self, reasons},
    },
    store::suppressions::Suppression,
};

#[derive(Serialize)]
struct Row {
    email: String,
    reason: String,
    detail: String,
    created: String,
}

fn row(s: Suppression) -> Row {
    Row {
        email: s.email,
        reason: s.reason,
        detail: s.detail.unwrap_or_default(),
        created: s.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Suppressions)?;
    let q: HashMap<String, String> = pairs
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect();
    let mut context = Context::new();
    context.insert("section", "suppressions");
    context.insert("reasons", &reasons());
    context.insert("reason", &q.get("reason"));
    context.insert("find", &q.get("email"));
    context.insert("done", &q.get("done"));
    let mut status = StatusCode::OK;
    let (rows, next) = match q.get("email") {
        // Finding one address: the list is that entry or nothing.
        Some(email) => {
            let found = match suppressions::find(&state, project, email).await {
                Ok(entry) => Some(entry),
                Err(ServiceError::NotFound(_)) => None,
                Err(err) => return Err(err.into()),
            };
            (found.into_iter().map(row).collect::<Vec<_>>(), None)
        }
        None => match suppressions::list(&state, project, &q).await {
            Ok(page) => {
                let next = page.next_cursor.map(|c| {
                    let reason = q
                        .get("reason")
                        .map(|r| format!("reason={}&", encode_component(r)))
                        .unwrap_or_default();
                    format!(
                        "/console/suppressions?{reason}cursor={}",
                        encode_component(&c)
                    )
                });
                (page.data.into_iter().map(row).collect(), next)
            }
            Err(ServiceError::Validation(errors)) => {
                status = StatusCode::BAD_REQUEST;
                let errors: Vec<(String, String)> =
                    errors.into_iter().map(|e| (e.field, e.message)).collect();
                context.insert("errors", &errors);
                (Vec::new(), None)
            }
            Err(other) => return Err(other.into()),
        },
    };
    if !context.contains_key("errors") {
        context.insert("errors", &Vec::<(String, String)>::new());
    }
    context.insert("rows", &rows);
    context.insert("next", &next);
    let mut response = view::page(Some(&viewer), "suppressions.html", "Suppressions", context);
    *response.status_mut() = status;
    Ok(response)
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

pub async fn add(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<AddForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Suppressions)?;
    let detail = form.detail.as_deref().filter(|d| !d.trim().is_empty());
    let reason = form.reason.as_deref().filter(|r| !r.is_empty());
    let (entry, _) = suppressions::add(&state, project, form.email.trim(), reason, detail).await?;
    Ok(Redirect::to(&format!(
        "/console/suppressions?email={}&done=added",
        encode_component(&entry.email)
    ))
    .into_response())
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

pub async fn remove(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<RemoveForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Suppressions)?;
    suppressions::remove(&state, project, &form.email).await?;
    Ok(Redirect::to("/console/suppressions?done=removed").into_response())
}
