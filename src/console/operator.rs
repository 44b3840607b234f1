//! The operator's pages: every project (and which one the other pages show), the queue by
//! status, the relays with their health, "retry deferred now", and where waiting mail is
//! headed (destination sites with their pauses).

use axum::{
    Form,
    extract::{Query, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, Serialize};
use tera::Context;
use uuid::Uuid;

use super::{
    error::{ConsoleError, ConsoleResult},
    session::{CsrfForm, Viewer},
    view,
};
use crate::{
    queue,
    service::{AppState, destinations as dest, relays},
    store::{console_sessions, projects},
};

fn require_operator(viewer: &Viewer) -> ConsoleResult<()> {
    if viewer.is_operator() {
        Ok(())
    } else {
        Err(ConsoleError::OperatorOnly)
    }
}

#[derive(Serialize)]
struct ProjectView {
    id: String,
    name: String,
    default_relay: String,
    created: String,
    current: bool,
}

pub async fn projects(State(state): State<AppState>, viewer: Viewer) -> ConsoleResult<Response> {
    require_operator(&viewer)?;
    let current = viewer.project.as_ref().map(|p| p.id);
    let rows: Vec<ProjectView> = projects::list(&state.pool)
        .await?
        .into_iter()
        .map(|p| ProjectView {
            id: p.id.to_string(),
            current: Some(p.id) == current,
            name: p.name,
            default_relay: p.default_relay.unwrap_or_default(),
            created: p.created_at.format("%Y-%m-%d").to_string(),
        })
        .collect();
    let mut context = Context::new();
    context.insert("section", "projects");
    context.insert("projects", &rows);
    Ok(view::page(
        Some(&viewer),
        "projects.html",
        "Projects",
        context,
    ))
}

#[derive(Deserialize)]
pub struct ChooseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    project: String,
}

pub async fn choose_project(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<ChooseForm>,
) -> ConsoleResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    require_operator(&viewer)?;
    let id = Uuid::parse_str(&form.project).map_err(|_| ConsoleError::NotFound("project"))?;
    projects::find(&state.pool, id)
        .await?
        .ok_or(ConsoleError::NotFound("project"))?;
    console_sessions::choose_project(&state.pool, viewer.session_id, id).await?;
    Ok(Redirect::to("/console/overview").into_response())
}

#[derive(Deserialize)]
pub struct QueueQuery {
    retried: Option<u64>,
}

pub async fn queue(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<QueueQuery>,
) -> ConsoleResult<Response> {
    require_operator(&viewer)?;
    let stats = queue::mail::stats(&state.pool).await?;
    let mut context = Context::new();
    context.insert("section", "queue");
    context.insert("by_status", &stats.by_status);
    context.insert(
        "oldest_waiting",
        &stats.oldest_waiting_secs.map(|s| format!("{s:.0} s")),
    );
    context.insert(
        "deferred",
        &stats
            .by_status
            .iter()
            .filter(|(s, _)| s == "deferred")
            .map(|(_, n)| n)
            .sum::<i64>(),
    );
    context.insert("relays", &relays::statuses(&state));
    context.insert("sandbox", &state.relays.is_sandbox());
    context.insert("retried", &q.retried);
    Ok(view::page(
        Some(&viewer),
        "queue.html",
        "Queue & relays",
        context,
    ))
}

/// Every deferred recipient of every project due now, as `mailgate queue retry` does.
pub async fn retry_deferred(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    require_operator(&viewer)?;
    let n = queue::mail::retry_now(&state.pool, "deferred", None)
        .await
        .map_err(anyhow::Error::msg)?;
    state.waker.mail.wake();
    Ok(Redirect::to(&format!("/console/queue?retried={n}")).into_response())
}

/// Destination sites with mail waiting, as `GET /v1/destinations` lists them.
pub async fn destinations(
    State(state): State<AppState>,
    viewer: Viewer,
) -> ConsoleResult<Response> {
    require_operator(&viewer)?;
    let list = dest::list(&state)
        .await
        .map_err(|e| anyhow::anyhow!("listing destinations: {e}"))?;
    let mut context = Context::new();
    context.insert("section", "destinations");
    context.insert("destinations", &list.data);
    context.insert("scanned", &list.scanned);
    context.insert("truncated", &list.truncated);
    Ok(view::page(
        Some(&viewer),
        "destinations.html",
        "Destinations",
        context,
    ))
}
