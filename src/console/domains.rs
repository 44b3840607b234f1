//! Sending domains: the project's domains with their status; one domain's records to
//! publish (each with its own status and what DNS held), Verify, Rotate DKIM, the DMARC
//! report address, and Delete.
//! Every action is `service::domains`, as `/v1/domains` calls it, under the same `domains`
//! scope; private keys never leave that module, so nothing here could show one.

use std::collections::HashMap;

use axum::{
    Form,
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, Serialize};
use tera::Context;

use super::{
    error::ConsoleResult,
    session::{CsrfForm, Viewer},
    view,
};
use crate::{
    domain::Scope,
    service::{
        AppState,
        domains::{self as ops, Domain, parse_id},
    },
};

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[derive(Serialize)]
struct DomainView {
    id: String,
    name: String,
    status: String,
    created: String,
    last_checked: String,
}

fn domain_view(d: &Domain) -> DomainView {
    DomainView {
        id: d.id.to_string(),
        name: d.name.clone(),
        status: d.status.clone(),
        created: when(d.created_at),
        last_checked: d.last_checked_at.map(when).unwrap_or_default(),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    done: Option<String>,
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Domains)?;
    // The API's paging: the page's `cursor` is the API's own.
    let paging: HashMap<String, String> = q
        .cursor
        .iter()
        .map(|c| ("cursor".to_string(), c.clone()))
        .collect();
    let page = ops::list(&state, project, &paging).await?;
    let domains: Vec<DomainView> = page.data.iter().map(domain_view).collect();
    let mut context = Context::new();
    context.insert("section", "domains");
    context.insert("domains", &domains);
    context.insert("next_cursor", &page.next_cursor);
    context.insert("done", &q.done);
    Ok(view::page(
        Some(&viewer),
        "domains.html",
        "Sending domains",
        context,
    ))
}

/// A new domain: its page then lists the records to publish.
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
    let project = viewer.may_change(field("csrf"), Scope::Domains)?;
    // Empty is the API's absent field: reports to `mailto:dmarc@<name>`.
    let rua = Some(field("dmarc_rua")).filter(|r| !r.is_empty());
    let domain = ops::create(
        &state,
        project,
        field("name"),
        ops::NewOptions {
            dmarc_rua: rua,
            ed25519: field("ed25519") == "on",
            return_path: None,
        },
    )
    .await?;
    Ok(Redirect::to(&format!("/console/domains/{}?done=added", domain.id)).into_response())
}

#[derive(Serialize)]
struct RecordView {
    purpose: String,
    kind: String,
    name: String,
    value: String,
    ttl: u32,
    priority: String,
    status: String,
    required: bool,
    problem: String,
    found: String,
}

#[derive(Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Domains)?;
    let domain = ops::get(&state, project, parse_id(&id)?).await?;
    let records: Vec<RecordView> = domain
        .records
        .iter()
        .map(|r| RecordView {
            purpose: r.record.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            value: r.value.clone(),
            ttl: r.ttl,
            priority: r.priority.map(|p| p.to_string()).unwrap_or_default(),
            status: r.status.clone(),
            required: r.required,
            problem: r.problem.clone().unwrap_or_default(),
            found: r.found.clone().unwrap_or_default(),
        })
        .collect();
    let mut context = Context::new();
    context.insert("section", "domains");
    context.insert("domain", &domain_view(&domain));
    context.insert("records", &records);
    context.insert("selector", &domain.dkim.selector);
    context.insert("pending_selector", &domain.dkim.pending_selector);
    context.insert("ed25519_selector", &domain.dkim.ed25519_selector);
    context.insert(
        "ed25519_pending_selector",
        &domain.dkim.ed25519_pending_selector,
    );
    context.insert("return_path", &domain.return_path);
    context.insert("removable", &domain.dkim.removable);
    context.insert("dmarc_rua", &domain.dmarc_rua);
    context.insert("done", &q.done);
    let title = format!("Domain {}", domain.name);
    Ok(view::page(Some(&viewer), "domain.html", &title, context))
}

pub async fn verify(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Domains)?;
    let domain = ops::verify(&state, project, parse_id(&id)?).await?;
    Ok(Redirect::to(&format!("/console/domains/{}?done=checked", domain.id)).into_response())
}

/// Absent fields are empty, so a form without the token is refused for that (403), not as
/// malformed.
#[derive(Deserialize)]
pub struct DmarcForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dmarc_rua: String,
}

/// Where DMARC reports go in the recommended record; empty goes back to the default.
pub async fn set_dmarc(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<DmarcForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Domains)?;
    let rua = Some(form.dmarc_rua.trim()).filter(|r| !r.is_empty());
    let domain = ops::update(&state, project, parse_id(&id)?, Some(rua)).await?;
    Ok(Redirect::to(&format!("/console/domains/{}?done=dmarc", domain.id)).into_response())
}

pub async fn rotate_dkim(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Domains)?;
    let domain = ops::rotate(&state, project, parse_id(&id)?).await?;
    Ok(Redirect::to(&format!("/console/domains/{}?done=rotated", domain.id)).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Domains)?;
    ops::remove(&state, project, parse_id(&id)?).await?;
    Ok(Redirect::to("/console/domains?done=deleted").into_response())
}
