//! API keys of the project, for a viewer with the `keys` scope (or the operator): list,
//! create (the key shown once), revoke, change send limits. Each action is the API's own
//! (`service::keys`), so a viewer signed in with a key gives no more than the key holds.

use axum::{
    Form,
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, Serialize};
use tera::Context;
use uuid::Uuid;

use super::{
    error::{ConsoleError, ConsoleResult},
    session::Viewer,
    view,
};
use crate::{
    domain::Scope,
    service::{
        AppState, Caller,
        error::{FieldError, ServiceError},
        keys::{self, CreateKey, UpdateKey},
    },
    store::api_keys,
};

#[derive(Serialize)]
struct KeyView {
    id: String,
    name: String,
    prefix: String,
    scopes: String,
    test_mode: bool,
    created: String,
    revoked: String,
    rate_per_sec: String,
    burst: String,
    daily_quota: String,
}

#[derive(Deserialize)]
pub struct ListQuery {
    done: Option<String>,
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    done: Option<&str>,
    created: Option<&str>,
) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Keys)?;
    let keys: Vec<KeyView> = api_keys::list(&state.pool, Some(project))
        .await?
        .into_iter()
        .map(|k| KeyView {
            id: k.id.to_string(),
            name: k.name.unwrap_or_default(),
            prefix: k.prefix,
            scopes: k.scopes.join(", "),
            test_mode: k.test_mode,
            created: k.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            revoked: k
                .revoked_at
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
            rate_per_sec: k.rate_per_sec.map(|r| r.to_string()).unwrap_or_default(),
            burst: k.burst.map(|b| b.to_string()).unwrap_or_default(),
            daily_quota: k.daily_quota.map(|q| q.to_string()).unwrap_or_default(),
        })
        .collect();
    let mut context = Context::new();
    context.insert("section", "keys");
    context.insert("keys", &keys);
    // A key offers only what it may give: its own scopes, and test keys when it is one.
    let (scopes, test_only): (Vec<&str>, bool) = match &viewer.who {
        Caller::Key(key) => (
            Scope::ALL
                .into_iter()
                .filter(|s| key.scopes.contains(s))
                .map(Scope::as_str)
                .collect(),
            key.test_mode,
        ),
        Caller::Operator => (Scope::ALL.map(Scope::as_str).to_vec(), false),
    };
    context.insert("scopes", &scopes);
    context.insert("test_only", &test_only);
    context.insert("done", &done);
    context.insert("created", &created);
    Ok(view::page(Some(viewer), "keys.html", "API keys", context))
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> ConsoleResult<Response> {
    page(&state, &viewer, q.done.as_deref(), None).await
}

/// A form's fields, some repeated (the scope checkboxes).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn one(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A number field: empty is `None`; anything else must parse.
    fn number<T: std::str::FromStr>(&self, name: &str, errors: &mut Vec<FieldError>) -> Option<T> {
        let raw = self.one(name);
        if raw.is_empty() {
            return None;
        }
        raw.parse()
            .map_err(|_| errors.push(FieldError::new(name, "must be a number")))
            .ok()
    }
}

fn invalid(errors: Vec<FieldError>) -> ConsoleResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::Validation(errors).into())
    }
}

/// The new key is in this answer only: it is stored as a hash.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(pairs): Form<Vec<(String, String)>>,
) -> ConsoleResult<Response> {
    let form = Fields(pairs);
    let project = viewer.may_change(form.one("csrf"), Scope::Keys)?;
    let mut errors = Vec::new();
    let body = CreateKey {
        project: None,
        scopes: form.all("scopes"),
        test: form.one("test") == "true",
        name: Some(form.one("name").to_string()).filter(|n| !n.is_empty()),
        rate_per_sec: form.number("rate_per_sec", &mut errors),
        burst: form.number("burst", &mut errors),
        daily_quota: form.number("daily_quota", &mut errors),
    };
    invalid(errors)?;
    let created = keys::create(&state, &viewer.who, project, &body).await?;
    page(&state, &viewer, Some("created"), Some(&created.key)).await
}

fn key_id(raw: &str) -> ConsoleResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ConsoleError::NotFound("api key"))
}

pub async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(Fields(pairs).one("csrf"), Scope::Keys)?;
    keys::revoke(&state, &viewer.who, key_id(&id)?, Some(project)).await?;
    Ok(Redirect::to("/console/keys?done=revoked").into_response())
}

/// Empty fields return a limit to the configured default, as `null` does in the API.
pub async fn limits(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> ConsoleResult<Response> {
    let form = Fields(pairs);
    let project = viewer.may_change(form.one("csrf"), Scope::Keys)?;
    let mut errors = Vec::new();
    let body = UpdateKey {
        rate_per_sec: Some(form.number("rate_per_sec", &mut errors)),
        burst: Some(form.number("burst", &mut errors)),
        daily_quota: Some(form.number("daily_quota", &mut errors)),
    };
    invalid(errors)?;
    let change = body.change()?;
    keys::update(&state, &viewer.who, key_id(&id)?, Some(project), &change).await?;
    Ok(Redirect::to("/console/keys?done=limits").into_response())
}
