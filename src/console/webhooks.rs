//! Webhooks: the project's endpoints; one endpoint with enable/disable, a new secret (shown
//! once), a test event, and its delivery log (the body sent, each attempt's answer) with
//! replay. The actions are the API's own (`service::webhooks`).

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
    session::{CsrfForm, Viewer},
    view,
};
use crate::{
    domain::Scope,
    service::{
        AppState,
        webhooks::{self as ops, CreateWebhook, endpoint, parse_id, queue_test, replay, rotate},
    },
    store::webhooks::EndpointRow,
    webhooks::EventType,
};

/// Deliveries shown on an endpoint's page, newest first; the API pages through the rest.
const DELIVERIES_SHOWN: i64 = 50;

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[derive(Serialize)]
struct EndpointView {
    id: String,
    url: String,
    description: String,
    events: String,
    enabled: bool,
    disabled_reason: String,
    failing_since: String,
    last_success: String,
}

fn endpoint_view(e: &EndpointRow) -> EndpointView {
    EndpointView {
        id: e.id.to_string(),
        url: e.url.clone(),
        description: e.description.clone().unwrap_or_default(),
        events: e
            .event_types
            .as_ref()
            .map_or("all".to_string(), |t| t.join(", ")),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone().unwrap_or_default(),
        failing_since: e.failing_since.map(when).unwrap_or_default(),
        last_success: e.last_success_at.map(when).unwrap_or_default(),
    }
}

pub async fn list(State(state): State<AppState>, viewer: Viewer) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Webhooks)?;
    let endpoints: Vec<EndpointView> = ops::list(&state, project)
        .await?
        .iter()
        .map(endpoint_view)
        .collect();
    let mut context = Context::new();
    context.insert("section", "webhooks");
    context.insert("endpoints", &endpoints);
    context.insert("event_types", &EventType::names().collect::<Vec<_>>());
    Ok(view::page(
        Some(&viewer),
        "webhooks.html",
        "Webhooks",
        context,
    ))
}

/// A new endpoint; its page then shows the signing secret, this once.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(pairs): Form<Vec<(String, String)>>,
) -> ConsoleResult<Response> {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    };
    let project = viewer.may_change(field("csrf"), Scope::Webhooks)?;
    let chosen: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "events")
        .map(|(_, v)| v.as_str())
        .collect();
    // No box ticked: every event type, as the API's default.
    let events = if chosen.is_empty() {
        serde_json::json!("all")
    } else {
        serde_json::json!(chosen)
    };
    let body = CreateWebhook {
        url: field("url").to_string(),
        events: Some(events),
        description: Some(field("description").to_string()).filter(|d| !d.is_empty()),
        enabled: Some(true),
        format: None,
    };
    let (row, secret) = ops::create(&state, project, &body).await?;
    page(
        &state,
        &viewer,
        &row.id.to_string(),
        Some("created"),
        Some(secret.expose()),
    )
    .await
}

#[derive(Serialize)]
struct DeliveryView {
    id: String,
    event_type: String,
    status: String,
    attempts: i32,
    response_status: String,
    latency_ms: String,
    error: String,
    next_attempt: String,
    created: String,
    payload: String,
    log: Vec<AttemptView>,
}

#[derive(Serialize)]
struct AttemptView {
    attempt: String,
    at: String,
    response_status: String,
    latency_ms: String,
    error: String,
}

/// A field of an attempt log entry as text (the log is JSON the sender wrote).
fn log_field(entry: &serde_json::Value, name: &str) -> String {
    match &entry[name] {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    raw_id: &str,
    done: Option<&str>,
    secret: Option<&str>,
) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Webhooks)?;
    let endpoint = endpoint(state, project, raw_id).await?;
    let deliveries: Vec<DeliveryView> =
        ops::deliveries(state, &endpoint, None, None, DELIVERIES_SHOWN)
            .await?
            .into_iter()
            .map(|d| DeliveryView {
                id: d.id.to_string(),
                event_type: d.event_type,
                status: d.status,
                attempts: d.attempts,
                response_status: d.response_status.map(|s| s.to_string()).unwrap_or_default(),
                latency_ms: d.latency_ms.map(|l| l.to_string()).unwrap_or_default(),
                error: d.error.unwrap_or_default(),
                next_attempt: d.next_attempt_at.map(when).unwrap_or_default(),
                created: when(d.created_at),
                payload: serde_json::to_string_pretty(&d.payload).unwrap_or_default(),
                log: d
                    .log
                    .as_array()
                    .map(|entries| {
                        entries
                            .iter()
                            .map(|e| AttemptView {
                                attempt: log_field(e, "attempt"),
                                at: log_field(e, "at"),
                                response_status: log_field(e, "response_status"),
                                latency_ms: log_field(e, "latency_ms"),
                                error: log_field(e, "error"),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
    let mut context = Context::new();
    context.insert("section", "webhooks");
    context.insert("endpoint", &endpoint_view(&endpoint));
    context.insert("deliveries", &deliveries);
    context.insert("done", &done);
    context.insert("secret", &secret);
    let title = format!("Webhook {}", endpoint.url);
    Ok(view::page(Some(viewer), "webhook.html", &title, context))
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> ConsoleResult<Response> {
    page(&state, &viewer, &id, q.done.as_deref(), None).await
}

#[derive(Deserialize)]
pub struct EnabledForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    enabled: String,
}

pub async fn set_enabled(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<EnabledForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Webhooks)?;
    let id = parse_id(&id)?;
    let enabled = form.enabled == "true";
    ops::set_enabled(&state, project, id, enabled).await?;
    let done = if enabled { "enabled" } else { "disabled" };
    Ok(Redirect::to(&format!("/console/webhooks/{id}?done={done}")).into_response())
}

/// The new secret is in this answer only (the page says so): it is not stored in clear.
pub async fn rotate_secret(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Webhooks)?;
    let (row, secret) = rotate(&state, project, parse_id(&id)?).await?;
    page(
        &state,
        &viewer,
        &row.id.to_string(),
        Some("rotated"),
        Some(secret.expose()),
    )
    .await
}

pub async fn send_test(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Webhooks)?;
    let endpoint = endpoint(&state, project, &id).await?;
    queue_test(&state, &endpoint).await?;
    Ok(Redirect::to(&format!("/console/webhooks/{}?done=test", endpoint.id)).into_response())
}

pub async fn replay_delivery(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, delivery)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Webhooks)?;
    let endpoint = endpoint(&state, project, &id).await?;
    let delivery = Uuid::parse_str(&delivery).map_err(|_| ConsoleError::NotFound("delivery"))?;
    replay(&state, &endpoint, delivery).await?;
    Ok(Redirect::to(&format!("/console/webhooks/{}?done=replayed", endpoint.id)).into_response())
}
