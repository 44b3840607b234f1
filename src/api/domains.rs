//! `/v1/domains`: the project's sending domains, the DNS records each must publish, their
//! verification and their DKIM keys (`service::domains`).

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use serde::Deserialize;

use super::{
    AppState,
    auth::ProjectKey,
    error::{ProblemResponses, ServiceResult},
    extract::{AppJson, AppQuery},
};
use crate::{
    domain::Scope,
    service::domains::{self, Domain, DomainList},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/domains", get(list).post(create))
        .route("/v1/domains/{id}", get(show).patch(update).delete(remove))
        .route("/v1/domains/{id}/verify", post(verify))
        .route("/v1/domains/{id}/rotate-dkim", post(rotate_dkim))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDomain {
    /// The domain mail is sent from, e.g. `example.com` (an IDN in its `xn--` form).
    #[schema(
        max_length = 253,
        pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
    )]
    pub name: String,
    /// Where DMARC reports go in the recommended record, `mailto:…`; default
    /// `mailto:dmarc@<name>`.
    #[serde(default)]
    #[schema(
        max_length = 320,
        pattern = r"^mailto:[A-Za-z0-9._%+-]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
    )]
    pub dmarc_rua: Option<String>,
    /// Also sign with an Ed25519 key (RFC 8463), a second signature beside the RSA one:
    /// receivers that check Ed25519 get the stronger one, the others still check RSA.
    #[serde(default)]
    pub ed25519: bool,
    /// The label of the return-path subdomain, e.g. `bounces` (the default,
    /// `domains.return_path`) for `bounces.<name>`.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
    )]
    pub return_path: Option<String>,
}

/// Only the fields given change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDomain {
    /// `null`: back to `mailto:dmarc@<name>`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 320, pattern = r"^mailto:[A-Za-z0-9._%+-]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")]
    pub dmarc_rua: Option<Option<String>>,
}

/// A present field, even `null`, is `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Add a sending domain: mailgate makes its DKIM keys and answers with the DNS records to
/// publish. Its status is `not_started` until `verify` is called.
#[utoipa::path(post, path = "/v1/domains", operation_id = "create_domain", tag = "domains", request_body = CreateDomain,
    responses(
        (status = 201, description = "Added, with the records to publish", body = Domain),
        ProblemResponses),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    key: ProjectKey,
    AppJson(body): AppJson<CreateDomain>,
) -> ServiceResult<(StatusCode, Json<Domain>)> {
    let key = key.require(Scope::Domains)?;
    let domain = domains::create(
        &state,
        key.project_id,
        &body.name,
        domains::NewOptions {
            dmarc_rua: body.dmarc_rua.as_deref(),
            ed25519: body.ed25519,
            return_path: body.return_path.as_deref(),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(domain)))
}

/// List the project's sending domains, newest first.
#[utoipa::path(get, path = "/v1/domains", operation_id = "list_domains", tag = "domains",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50"),
        ("cursor" = Option<String>, Query, pattern = r"^[A-Za-b][A-Za-z0-9_-]{9}[AEIMQUYcgkosw048][0-9a-f]{32}$", description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, description = "One page", body = DomainList), ProblemResponses),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    key: ProjectKey,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> ServiceResult<Json<DomainList>> {
    let key = key.require(Scope::Domains)?;
    Ok(Json(domains::list(&state, key.project_id, &q).await?))
}

/// A sending domain, its records and what the last check found.
#[utoipa::path(get, path = "/v1/domains/{id}", operation_id = "show_domain", tag = "domains",
    params(("id" = String, Path, description = "The domain's id")),
    responses((status = 200, description = "The domain", body = Domain), ProblemResponses),
    security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ServiceResult<Json<Domain>> {
    let key = key.require(Scope::Domains)?;
    let id = domains::parse_id(&id)?;
    Ok(Json(domains::get(&state, key.project_id, id).await?))
}

/// Change where DMARC reports go in the recommended record.
#[utoipa::path(patch, path = "/v1/domains/{id}", operation_id = "update_domain", tag = "domains",
    params(("id" = String, Path, description = "The domain's id")),
    request_body = UpdateDomain,
    responses((status = 200, description = "The domain", body = Domain), ProblemResponses),
    security(("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateDomain>,
) -> ServiceResult<Json<Domain>> {
    let key = key.require(Scope::Domains)?;
    let id = domains::parse_id(&id)?;
    let rua = body.dmarc_rua.as_ref().map(|r| r.as_deref());
    Ok(Json(
        domains::update(&state, key.project_id, id, rua).await?,
    ))
}

/// Remove a sending domain and its keys: its mail is no longer signed with them.
#[utoipa::path(delete, path = "/v1/domains/{id}", operation_id = "remove_domain", tag = "domains",
    params(("id" = String, Path, description = "The domain's id")),
    responses((status = 204, description = "Removed"), ProblemResponses),
    security(("api_key" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ServiceResult<StatusCode> {
    let key = key.require(Scope::Domains)?;
    let id = domains::parse_id(&id)?;
    domains::remove(&state, key.project_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check the domain's records in DNS now. A domain not started or failed starts a new
/// pending spell; each record's `status` and `problem` say what was found.
#[utoipa::path(post, path = "/v1/domains/{id}/verify", operation_id = "verify_domain", tag = "domains",
    params(("id" = String, Path, description = "The domain's id")),
    responses((status = 200, description = "The domain as the check left it", body = Domain), ProblemResponses),
    security(("api_key" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ServiceResult<Json<Domain>> {
    let key = key.require(Scope::Domains)?;
    let id = domains::parse_id(&id)?;
    Ok(Json(domains::verify(&state, key.project_id, id).await?))
}

/// Start a DKIM key rotation: a new key under a new selector, whose record the answer lists.
/// The current key signs until the new record is seen in DNS; then the new one does, and
/// `dkim.removable` names the old record.
#[utoipa::path(post, path = "/v1/domains/{id}/rotate-dkim", operation_id = "rotate_domain_dkim", tag = "domains",
    params(("id" = String, Path, description = "The domain's id")),
    responses((status = 200, description = "The domain with its pending key's record", body = Domain), ProblemResponses),
    security(("api_key" = [])))]
pub async fn rotate_dkim(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ServiceResult<Json<Domain>> {
    let key = key.require(Scope::Domains)?;
    let id = domains::parse_id(&id)?;
    Ok(Json(domains::rotate(&state, key.project_id, id).await?))
}
