//! `/v1/projects`: tenants, for the operator only.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, patch},
};
use serde::Deserialize;

use super::{
    AppState,
    auth::Operator,
    error::FieldError,
    error::ProblemResponses,
    error::{ServiceError, ServiceResult},
    extract::AppJson,
};
use crate::{
    config::{OnScanError, ScanAction, check_domain},
    service,
    store::projects::{self, Project, SettingsChange},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/projects", get(list).post(create))
        .route("/v1/projects/{name}", patch(update))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// 1 to 64 letters, digits, `-` or `_`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// A configured relay or pool for this project's mail when a send names none.
    #[serde(default)]
    pub default_relay: Option<String>,
}

/// Create a project.
#[utoipa::path(post, path = "/v1/projects", operation_id = "create_project", tag = "operator", request_body = CreateProject,
    responses((status = 201, description = "Created", body = Project), ProblemResponses),
    security(("operator" = [])))]
pub async fn create(
    State(state): State<AppState>,
    _op: Operator,
    AppJson(body): AppJson<CreateProject>,
) -> ServiceResult<(StatusCode, Json<Project>)> {
    let project =
        service::projects::create(&state, &body.name, body.default_relay.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(project)))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProjectList {
    pub data: Vec<Project>,
}

/// List projects.
#[utoipa::path(get, path = "/v1/projects", operation_id = "list_projects", tag = "operator",
    responses((status = 200, description = "Every project", body = ProjectList), ProblemResponses),
    security(("operator" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _op: Operator,
) -> ServiceResult<Json<ProjectList>> {
    let data = projects::list(&state.pool).await?;
    Ok(Json(ProjectList { data }))
}

/// A change to a project's settings; absent fields stay as they are, `null` clears.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectUpdate {
    /// A configured relay or pool, or `null` for the server's default.
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>, min_length = 1)]
    pub default_relay: Option<Option<String>>,
    /// The domain of this project's VERP return paths (its MX must point at the inbound
    /// listener), or `null` for the server's `bounce.domain`.
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>, max_length = 253, pattern = r"^[A-Za-z0-9.-]+$")]
    pub bounce_domain: Option<Option<String>>,
    /// Domains whose mail becomes `email.received` webhooks of this project (up to 20).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub inbound_domains: Option<Vec<String>>,
    /// Track opens of sends that do not say (`track.opens`).
    #[serde(default)]
    pub track_opens: Option<bool>,
    /// Track clicks of sends that do not say (`track.clicks`).
    #[serde(default)]
    pub track_clicks: Option<bool>,
    /// Add one-click unsubscribe headers (RFC 8058) to sends with one recipient that do not
    /// say (`unsubscribe`); sends with several go without. Needs the server's
    /// `tracking.base_url`.
    #[serde(default)]
    pub unsubscribe_default: Option<bool>,
    /// What a spam verdict does to this project's mail, or `null` for the server's `scan.spam`.
    #[serde(default, deserialize_with = "some")]
    pub scan_spam: Option<Option<ScanAction>>,
    /// What a virus does, or `null` for the server's `scan.virus`.
    #[serde(default, deserialize_with = "some")]
    pub scan_virus: Option<Option<ScanAction>>,
    /// What an unavailable scanner does, or `null` for the server's `scan.on_error`.
    #[serde(default, deserialize_with = "some")]
    pub scan_on_error: Option<Option<OnScanError>>,
}

/// A present field, even `null`, is `Some`: so `null` can clear a setting.
fn some<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Change a project's settings: default relay, bounce and inbound domains, tracking and
/// unsubscribe defaults.
#[utoipa::path(patch, path = "/v1/projects/{name}", operation_id = "update_project", tag = "operator",
    params(("name" = String, Path, description = "The project's name")),
    request_body = ProjectUpdate,
    responses((status = 200, description = "The project as it now is", body = Project), ProblemResponses),
    security(("operator" = [])))]
pub async fn update(
    State(state): State<AppState>,
    _op: Operator,
    Path(name): Path<String>,
    AppJson(body): AppJson<ProjectUpdate>,
) -> ServiceResult<Json<Project>> {
    let mut errors = Vec::new();
    if let Some(Some(relay)) = &body.default_relay
        && !state.relays.contains(relay)
    {
        errors.push(FieldError::new(
            "default_relay",
            format!("no relay or pool named `{relay}` is configured"),
        ));
    }
    let bounce_domain = body
        .bounce_domain
        .map(|d| d.map(|d| d.to_ascii_lowercase()));
    if let Some(Some(domain)) = &bounce_domain
        && let Err(e) = check_domain("bounce_domain", domain)
    {
        errors.push(FieldError::new("bounce_domain", e.to_string()));
    }
    let inbound_domains = body.inbound_domains.map(|list| {
        let mut list: Vec<String> = list.iter().map(|d| d.trim().to_ascii_lowercase()).collect();
        list.sort();
        list.dedup();
        list
    });
    if let Some(list) = &inbound_domains {
        if list.len() > 20 {
            errors.push(FieldError::new("inbound_domains", "at most 20 domains"));
        }
        for (i, domain) in list.iter().enumerate() {
            if let Err(e) = check_domain("inbound domain", domain) {
                errors.push(FieldError::new(
                    format!("inbound_domains[{i}]"),
                    e.to_string(),
                ));
            }
        }
    }
    if body.unsubscribe_default == Some(true) && state.config.tracking.base().is_none() {
        errors.push(FieldError::new(
            "unsubscribe_default",
            "one-click unsubscribe needs the server's tracking.base_url, which is not set",
        ));
    }
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    let change = SettingsChange {
        default_relay: body.default_relay,
        bounce_domain,
        inbound_domains,
        track_opens: body.track_opens,
        track_clicks: body.track_clicks,
        unsubscribe_default: body.unsubscribe_default,
        scan_spam: body.scan_spam.map(|a| a.map(|a| a.as_str().to_string())),
        scan_virus: body.scan_virus.map(|a| a.map(|a| a.as_str().to_string())),
        scan_on_error: body
            .scan_on_error
            .map(|a| a.map(|a| a.as_str().to_string())),
    };
    let project = projects::update(&state.pool, &name, &change)
        .await?
        .ok_or(ServiceError::NotFound("project"))?;
    state.submissions.project_settings_changed(project.id);
    Ok(Json(project))
}
