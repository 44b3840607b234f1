//! Resend's Domains API (`resend.Domains.*` in Python, `resend.domains.*` in Node): the
//! native domain operations (`service::domains`) in Resend's shapes. Record names are
//! relative to the domain as Resend gives them (`mg20261207._domainkey`, `_dmarc`, `@`), TTL
//! `"Auto"`. Resend's tracking, TLS and region settings are accepted and named in
//! `X-Mailgate-Ignored`: mailgate's tracking is the project's, TLS the relay's.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde::Serialize;
use serde_json::Value;

use super::{
    super::shared::{answer, ignored_in},
    errors::{ResendErrors, error},
};
use crate::{
    api::{AppState, auth::ProjectKey, error::ServiceError, extract::parse_json_object},
    service::domains::{self, Domain},
};

/// Fields of Resend's create and update bodies that mailgate does not act on.
const IGNORED: &[&str] = &["region", "open_tracking", "click_tracking", "tls"];

/// Resend's create body (as resend-python and resend-node send it).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ResendCreateDomain {
    /// As `POST /v1/domains`'s `name`.
    #[schema(
        max_length = 253,
        pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
    )]
    pub name: String,
    /// Ignored.
    pub region: Option<Value>,
    /// The return-path subdomain's label (as `POST /v1/domains`'s `return_path`).
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
    )]
    pub custom_return_path: Option<String>,
    /// Ignored.
    pub open_tracking: Option<Value>,
    /// Ignored.
    pub click_tracking: Option<Value>,
    /// Ignored.
    pub tls: Option<Value>,
}

/// A record as Resend lists it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResendRecord {
    /// `DKIM`, `SPF` (the return path's MX too, as Resend labels it), `DMARC`, `TRACKING`.
    pub record: String,
    /// Relative to the domain (`@` for the domain itself).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `"Auto"`, as Resend.
    pub ttl: String,
    pub status: String,
    pub value: String,
    pub priority: Option<u16>,
}

/// A domain as Resend shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResendDomain {
    /// `"domain"`.
    pub object: &'static str,
    pub id: uuid::Uuid,
    pub name: String,
    pub status: String,
    pub created_at: String,
    pub region: &'static str,
    pub records: Vec<ResendRecord>,
}

/// Resend's page of domains.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResendDomainList {
    /// `"list"`.
    pub object: &'static str,
    pub data: Vec<ResendDomain>,
    pub has_more: bool,
}

/// `{"object": "domain", "id"}` (and `"deleted": true` after a removal).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResendDomainRef {
    pub object: &'static str,
    pub id: uuid::Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

fn relative(name: &str, domain: &str) -> String {
    match name.strip_suffix(domain) {
        Some("") => "@".into(),
        Some(head) => head.trim_end_matches('.').to_string(),
        None => name.to_string(),
    }
}

fn shaped(d: Domain) -> ResendDomain {
    ResendDomain {
        object: "domain",
        id: d.id,
        records: d
            .records
            .into_iter()
            .map(|r| ResendRecord {
                name: relative(&r.name, &d.name),
                record: if r.record == "RETURN_PATH" {
                    "SPF".into()
                } else {
                    r.record
                },
                kind: r.kind,
                ttl: "Auto".into(),
                status: r.status,
                value: r.value,
                priority: r.priority,
            })
            .collect(),
        name: d.name,
        status: d.status,
        created_at: d.created_at.to_rfc3339(),
        region: "self-hosted",
    }
}

fn reply<T: Serialize>(result: Result<T, ServiceError>, ignored: &[String]) -> Response {
    match result {
        Ok(body) => answer(StatusCode::OK, &body, ignored),
        Err(err) => error(err),
    }
}

/// Add a domain (Resend).
///
/// Resend's `POST /domains` `{"name"}`: answers the domain with its records to publish.
#[utoipa::path(post, path = "/domains", operation_id = "resend_create_domain", tag = "resend",
    request_body = ResendCreateDomain,
    responses((status = 200, description = "Added", body = ResendDomain), ResendErrors),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    body: Bytes,
) -> Response {
    let mut ignored = Vec::new();
    let created = async {
        let body: Value = parse_json_object(&body)?;
        ignored = ignored_in(&body, IGNORED);
        let name = body["name"].as_str().ok_or_else(|| {
            ServiceError::validation("name", "is required: the domain's name (a string)")
        })?;
        let return_path = match &body["custom_return_path"] {
            Value::Null => None,
            Value::String(label) => Some(label.as_str()),
            _ => {
                return Err(ServiceError::validation(
                    "custom_return_path",
                    "must be a string: the return-path subdomain's label, e.g. send",
                ));
            }
        };
        domains::create(
            &state,
            key.project_id,
            name,
            domains::NewOptions {
                return_path,
                ..Default::default()
            },
        )
        .await
        .map(shaped)
    }
    .await;
    reply(created, &ignored)
}

/// List domains (Resend).
#[utoipa::path(get, path = "/domains", operation_id = "resend_list_domains", tag = "resend",
    responses((status = 200, description = "The project's domains (up to 100)", body = ResendDomainList), ResendErrors),
    security(("api_key" = [])))]
pub async fn list(State(state): State<AppState>, ProjectKey(key): ProjectKey) -> Response {
    let q = HashMap::from([("limit".to_string(), "100".to_string())]);
    let listed = domains::list(&state, key.project_id, &q)
        .await
        .map(|page| ResendDomainList {
            object: "list",
            has_more: page.has_more,
            data: page.data.into_iter().map(shaped).collect(),
        });
    reply(listed, &[])
}

/// Get a domain (Resend).
#[utoipa::path(get, path = "/domains/{id}", operation_id = "resend_get_domain", tag = "resend",
    params(("id" = String, Path, description = "The domain's id")),
    responses((status = 200, description = "The domain", body = ResendDomain), ResendErrors),
    security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    Path(id): Path<String>,
) -> Response {
    let got = async {
        let id = domains::parse_id(&id)?;
        domains::get(&state, key.project_id, id).await.map(shaped)
    }
    .await;
    reply(got, &[])
}

/// Update a domain (Resend).
///
/// Resend's settings (tracking, TLS) are not mailgate's per domain: accepted, ignored and
/// named in `X-Mailgate-Ignored`.
#[utoipa::path(patch, path = "/domains/{id}", operation_id = "resend_update_domain", tag = "resend",
    params(("id" = String, Path, description = "The domain's id")),
    request_body(content = Object, description = "`open_tracking`, `click_tracking`, `tls`: ignored"),
    responses((status = 200, description = "The domain", body = ResendDomainRef), ResendErrors),
    security(("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut ignored = Vec::new();
    let updated = async {
        // A body is required, as Resend's SDKs always send one (an object, maybe empty).
        let body: Value = parse_json_object(&body)?;
        ignored = ignored_in(&body, IGNORED);
        let id = domains::parse_id(&id)?;
        let d = domains::update(&state, key.project_id, id, None).await?;
        Ok(ResendDomainRef {
            object: "domain",
            id: d.id,
            deleted: None,
        })
    }
    .await;
    reply(updated, &ignored)
}

/// Remove a domain (Resend).
#[utoipa::path(delete, path = "/domains/{id}", operation_id = "resend_remove_domain", tag = "resend",
    params(("id" = String, Path, description = "The domain's id")),
    responses((status = 200, description = "Removed", body = ResendDomainRef), ResendErrors),
    security(("api_key" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    Path(id): Path<String>,
) -> Response {
    let removed = async {
        let id = domains::parse_id(&id)?;
        domains::remove(&state, key.project_id, id).await?;
        Ok(ResendDomainRef {
            object: "domain",
            id,
            deleted: Some(true),
        })
    }
    .await;
    reply(removed, &[])
}

/// Verify a domain (Resend): checks its records in DNS now.
#[utoipa::path(post, path = "/domains/{id}/verify", operation_id = "resend_verify_domain", tag = "resend",
    params(("id" = String, Path, description = "The domain's id")),
    responses((status = 200, description = "Checked; `GET /domains/{id}` shows the statuses", body = ResendDomainRef), ResendErrors),
    security(("api_key" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    ProjectKey(key): ProjectKey,
    Path(id): Path<String>,
) -> Response {
    let verified = async {
        let id = domains::parse_id(&id)?;
        let d = domains::verify(&state, key.project_id, id).await?;
        Ok(ResendDomainRef {
            object: "domain",
            id: d.id,
            deleted: None,
        })
    }
    .await;
    reply(verified, &[])
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn names_are_relative_to_the_domain() {
        assert_eq!(relative("example.com", "example.com"), "@");
        assert_eq!(relative("_dmarc.example.com", "example.com"), "_dmarc");
        assert_eq!(
            relative("mg1._domainkey.example.com", "example.com"),
            "mg1._domainkey"
        );
    }
}
